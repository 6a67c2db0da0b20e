#ifndef TERN_CSODIUM_SHIM_H
#define TERN_CSODIUM_SHIM_H
#include <sodium.h>
#endif

#ifndef TERN_CQRENCODE_SHIM_H
#define TERN_CQRENCODE_SHIM_H
#include <qrencode.h>
#endif

#!/usr/bin/env bash
# Builds the browser page's files into .build/web (or $1): the page's own
# HTML, CSS and JavaScript from web/, and sodium.wasm, libsodium compiled to
# WebAssembly from Debian's source package with the Swift toolchain's clang
# (--target=wasm32-wasi) and wasm-ld, against Debian's wasi-libc.
#
# The source package is fetched with a deb-src entry that exists only for
# that one apt-get command (a private sources list and package lists under
# the output directory; the system's apt configuration is not touched). apt
# checks the files against the signed Sources index, as for any package.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.build/web}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The exports the page uses (web/sodium.js); nothing else is kept.
exports=(
  sodium_init malloc free sodium_memzero randombytes_buf
  crypto_hash_sha256 crypto_hash_sha512 crypto_generichash crypto_verify_32
  crypto_core_ristretto255_from_hash crypto_core_ristretto255_is_valid_point
  crypto_core_ristretto255_scalar_random crypto_scalarmult_ristretto255
  crypto_aead_xchacha20poly1305_ietf_encrypt crypto_aead_xchacha20poly1305_ietf_decrypt
)

swift_bin=$(dirname "$(readlink -f "$(command -v swift)")")
clang=$swift_bin/clang
wasm_ld=$swift_bin/wasm-ld
[ -x "$clang" ] && [ -x "$wasm_ld" ] || { echo "build-web: no clang/wasm-ld beside swift in $swift_bin" >&2; exit 1; }
[ -f /usr/lib/wasm32-wasi/libc.a ] || { echo "build-web: no wasi-libc (make deps installs Debian's wasi-libc)" >&2; exit 1; }

wasm=$out/sodium.wasm
if [ ! -f "$wasm" ] || [ "$0" -nt "$wasm" ]; then
  work=$out/libsodium-src
  apt_dir=$out/apt
  mkdir -p "$work" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main" \
    > "$apt_dir/sources.list"
  apt_options=(
    -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/none"
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
    -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root"
  )
  if ! ls "$work"/libsodium_*.orig.tar.gz >/dev/null 2>&1; then
    echo "build-web: fetching Debian's libsodium source package"
    apt-get -qq "${apt_options[@]}" update
    (cd "$work" && apt-get -qq "${apt_options[@]}" source --download-only libsodium)
  fi
  tarball=$(ls "$work"/libsodium_*.orig.tar.gz | head -n 1)
  version=$(basename "$tarball" | sed -e 's/^libsodium_//' -e 's/\.orig\.tar\.gz$//')
  src=$work/libsodium-$version
  rm -rf "$src" && tar -xzf "$tarball" -C "$work"
  include=$src/src/libsodium/include
  # version.h is made by libsodium's configure; the page needs only the names.
  major=$(grep -m1 -o 'SODIUM_LIBRARY_VERSION_MAJOR=[0-9]*' "$src/configure.ac" | cut -d= -f2)
  minor=$(grep -m1 -o 'SODIUM_LIBRARY_VERSION_MINOR=[0-9]*' "$src/configure.ac" | cut -d= -f2)
  sed -e "s/@VERSION@/$version/" -e "s/@SODIUM_LIBRARY_VERSION_MAJOR@/${major:-10}/" \
      -e "s/@SODIUM_LIBRARY_VERSION_MINOR@/${minor:-3}/" -e 's/@SODIUM_LIBRARY_MINIMAL_DEF@//' \
      "$include/sodium/version.h.in" > "$include/sodium/version.h"
  objects=$work/obj
  rm -rf "$objects" && mkdir -p "$objects"
  echo "build-web: compiling libsodium $version for wasm32-wasi"
  find "$src/src/libsodium" -name '*.c' | sort | while read -r file; do
    name=$(echo "${file#"$src/"}" | tr / _)
    # sodium/utils.c uses signal(); wasi-libc has it only as an emulation.
    # CONFIGURED and NATIVE_LITTLE_ENDIAN are what libsodium's configure
    # would define for wasm32 (a little-endian target).
    "$clang" --target=wasm32-wasi --sysroot=/usr -isystem /usr/include/wasm32-wasi \
      -Oz -DNDEBUG -D_WASI_EMULATED_SIGNAL -DCONFIGURED=1 -DNATIVE_LITTLE_ENDIAN=1 \
      -I"$include/sodium" -I"$include" \
      -c "$file" -o "$objects/${name%.c}.o"
  done
  "$wasm_ld" --no-entry --gc-sections --strip-all \
    $(printf -- '--export=%s ' "${exports[@]}") \
    -L/usr/lib/wasm32-wasi "$objects"/*.o -lc -lwasi-emulated-signal -o "$wasm.tmp"
  mv "$wasm.tmp" "$wasm"
  echo "build-web: $(stat -c %s "$wasm") bytes in $wasm"
fi

find web -maxdepth 1 -type f -exec cp {} "$out/" \;

#!/usr/bin/env bash
# Builds each libFuzzer target (swiftc -sanitize=fuzzer,address) with the
# sources of the module it fuzzes, and runs it for FUZZ_SECONDS seconds.
# A crash leaves its input in Fuzz/out/<target>/ and fails this script.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-30}
targets=${FUZZ_TARGETS:-"code rendezvous-frames stun sdp ice-candidate turn-client sctp-packet dcep transfer-message dtls-records lan-beacon"}
mkdir -p Fuzz/out

build() {
  local name=$1; shift
  # A failed build must not leave the last run's binary to be fuzzed.
  rm -f "Fuzz/out/$name"
  swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name "Fuzz_${name//-/_}" \
    "Fuzz/$name.swift" "$@" -o "Fuzz/out/$name" 2>&1 | grep -v "ld.gold: warning: Cannot export local symbol" || true
  test -x "Fuzz/out/$name"
}

# TernICE and TernTURN import TernSTUN and TernCollections, TernTransfer
# imports TernCollections: build those as modules of their own.
collections_library() {
  swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name TernCollections -emit-library -static \
    -emit-module -emit-module-path Fuzz/out/TernCollections.swiftmodule \
    Sources/TernCollections/*.swift -o Fuzz/out/libTernCollections.a
}

# The digests, MACs and random bytes STUN, SCTP, DTLS and TernTransfer import
# (OpenSSL and libsodium underneath).
crypto_library() {
  swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name TernCrypto -emit-library -static \
    -emit-module -emit-module-path Fuzz/out/TernCrypto.swiftmodule -I Sources/COpenSSL -I Sources/CSodium \
    Sources/TernCrypto/*.swift -o Fuzz/out/libTernCrypto.a
}

# The bounded reader the codecs import.
wire_library() {
  swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name TernWire -emit-library -static \
    -emit-module -emit-module-path Fuzz/out/TernWire.swiftmodule \
    Sources/TernWire/*.swift -o Fuzz/out/libTernWire.a
}

stun_library() {
  collections_library
  wire_library
  crypto_library
  swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name TernSTUN -emit-library -static \
    -emit-module -emit-module-path Fuzz/out/TernSTUN.swiftmodule -I Fuzz/out -I Sources/COpenSSL -I Sources/CSodium \
    Sources/TernSTUN/*.swift -o Fuzz/out/libTernSTUN.a
}

for target in $targets; do
  case $target in
    code|rendezvous-frames) build "$target" Sources/TernRendezvous/*.swift ;;
    stun)
      wire_library
      crypto_library
      build "$target" -I Fuzz/out -I Sources/COpenSSL -I Sources/CSodium Sources/TernSTUN/*.swift Fuzz/out/libTernWire.a \
        Fuzz/out/libTernCrypto.a -lcrypto -lsodium ;;
    sdp) build "$target" Sources/TernSDP/*.swift ;;
    ice-candidate)
      stun_library
      build "$target" -I Fuzz/out -I Sources/COpenSSL -I Sources/CSodium Sources/TernICE/*.swift Fuzz/out/libTernSTUN.a Fuzz/out/libTernCollections.a Fuzz/out/libTernWire.a \
        Fuzz/out/libTernCrypto.a -lcrypto -lsodium ;;
    turn-client)
      stun_library
      build "$target" -I Fuzz/out -I Sources/COpenSSL -I Sources/CSodium Sources/TernTURN/*.swift Fuzz/out/libTernSTUN.a Fuzz/out/libTernCollections.a Fuzz/out/libTernWire.a \
        Fuzz/out/libTernCrypto.a -lcrypto -lsodium ;;
    sctp-packet)
      # The whole module: the codec, and SCTPWire's data-path decoder checked against it.
      collections_library
      wire_library
      crypto_library
      build "$target" -I Fuzz/out -I Sources/COpenSSL -I Sources/CSodium Sources/TernSCTP/*.swift Fuzz/out/libTernCollections.a Fuzz/out/libTernWire.a \
        Fuzz/out/libTernCrypto.a -lcrypto -lsodium ;;
    dcep)
      wire_library
      build "$target" -I Fuzz/out Sources/TernDataChannel/DCEP.swift Sources/TernDataChannel/DataChannelError.swift Fuzz/out/libTernWire.a ;;
    dtls-records)
      # A connected pair with the own record layer, fed hostile datagrams.
      collections_library
      crypto_library
      wire_library
      build "$target" -I Fuzz/out -I Sources/COpenSSL -I Sources/CSodium Sources/TernDTLS/*.swift \
        Fuzz/out/libTernCollections.a Fuzz/out/libTernCrypto.a Fuzz/out/libTernWire.a -lssl -lcrypto -lsodium ;;
    transfer-message)
      collections_library
      crypto_library
      wire_library
      build "$target" -I Fuzz/out -I Sources/COpenSSL -I Sources/CSodium Sources/TernTransfer/*.swift Fuzz/out/libTernCollections.a \
        Fuzz/out/libTernCrypto.a Fuzz/out/libTernWire.a -lcrypto -lsodium ;;
    lan-beacon)
      wire_library
      build "$target" -I Fuzz/out Sources/TernLAN/LANMessage.swift Sources/TernLAN/LANError.swift Fuzz/out/libTernWire.a ;;
    *) echo "unknown fuzz target $target" >&2; exit 2 ;;
  esac
  corpus="Fuzz/corpus-$target"
  mkdir -p "$corpus" "Fuzz/out/$target-crashes"
  seeds=()
  [ -d "Fuzz/seeds/$target" ] && seeds=("Fuzz/seeds/$target")
  echo "== fuzzing $target for ${seconds}s"
  "Fuzz/out/$target" -max_total_time="$seconds" -print_final_stats=1 -max_len=4096 \
    -artifact_prefix="Fuzz/out/$target-crashes/" "$corpus" "${seeds[@]}" 2>&1 | grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)|Done [0-9]+ runs" || true
  if ls "Fuzz/out/$target-crashes/"* >/dev/null 2>&1; then
    echo "fuzz target $target found a crash: see Fuzz/out/$target-crashes/" >&2
    exit 1
  fi
done

// swift-tools-version:6.0
import PackageDescription

// Layering (see docs/architecture.md): a module only imports the ones listed
// before it here. Protocol cores (TernSTUN, TernRendezvous, TernPairing) do no
// I/O; TernRelay and TernSession own sockets through SwiftNIO.
//
// Linux only: the target directory is written through Glibc's openat family
// and renameat2(RENAME_NOREPLACE) (TernTransfer/TargetDirectory.swift), so no
// other platform is declared.
let package = Package(
    name: "tern",
    products: [
        .executable(name: "tern", targets: ["tern"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        // Small pieces every layer shares: the queue every sans-IO core keeps
        // its output in, and terminal-safe display of text from a peer.
        .target(name: "TernCollections"),

        // The bounded reader every wire format is parsed with (typed errors,
        // no index arithmetic in the codecs), its padded TLV walker, and the
        // writer the encoders use.
        .target(name: "TernWire"),

        // C libraries, found through pkg-config (no vendored copies).
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .systemLibrary(
            name: "CQRencode",
            pkgConfig: "libqrencode",
            providers: [.apt(["libqrencode-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),

        // The one place tern reaches OpenSSL's and libsodium's primitives for
        // digests, HMAC, random bytes, wiping and constant-time compares, with
        // one error type (OpenSSL's error queue turned into it).
        .target(name: "TernCrypto", dependencies: ["COpenSSL", "CSodium"]),

        // STUN message codec (RFC 8489): attributes, integrity, fingerprint.
        .target(name: "TernSTUN", dependencies: ["TernCrypto", "TernWire"]),

        // The rendezvous wire protocol between clients and the relay: frames,
        // their bounded parser, and the code (nameplate + words).
        .target(name: "TernRendezvous"),

        // Pairing: CPace over ristretto255, key schedule, sealed mailbox
        // messages, and the sans-IO pairing state machine.
        .target(name: "TernPairing", dependencies: ["CSodium", "TernCrypto", "TernRendezvous", "TernCollections"]),

        // ICE agent (RFC 8445, 8838, 7675), sans-IO.
        .target(name: "TernICE", dependencies: ["TernSTUN", "TernCollections"]),

        // TURN client (RFC 8656) over UDP or TCP to the server, sans-IO.
        .target(name: "TernTURN", dependencies: ["TernSTUN", "TernCollections", "TernWire"]),

        // Session descriptions: the data-channel-only SDP offer/answer (JSEP).
        .target(name: "TernSDP"),

        // TLS over OpenSSL memory BIOs as a SwiftNIO handler, for wss:// relays.
        .target(
            name: "TernTLS",
            dependencies: ["COpenSSL", "TernCrypto", .product(name: "NIOCore", package: "swift-nio")]
        ),

        // The relay server: WebSocket rendezvous, health endpoint, STUN
        // responder, TURN credentials.
        .target(
            name: "TernRelay",
            dependencies: [
                "TernRendezvous", "TernSTUN", "TernTLS", "TernCrypto",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),

        // DTLS 1.2 (RFC 6347) over OpenSSL through a datagram BIO, sans-IO.
        .target(name: "TernDTLS", dependencies: ["COpenSSL", "TernCrypto", "TernCollections", "TernWire"]),

        // SCTP over DTLS (RFC 9260, 8261) with FORWARD-TSN (RFC 3758), stream
        // reset (RFC 6525) and zero checksums (RFC 9653): the wire codec and
        // the sans-IO association (TernCrypto for the state cookie's HMAC).
        .target(name: "TernSCTP", dependencies: ["TernCrypto", "TernCollections", "TernWire"]),

        // WebRTC data channels: DCEP (RFC 8832), PPIDs and channels over an
        // SCTP association (RFC 8831).
        .target(name: "TernDataChannel", dependencies: ["TernSCTP", "TernCollections", "TernWire"]),

        // File transfer over a data channel: manifest, chunks, hashes, resume
        // state and safe writing under a target directory.
        .target(name: "TernTransfer", dependencies: ["TernCrypto", "TernCollections", "TernWire"]),

        // The client side of a session: WebSocket connection to the relay and
        // the driver that pumps the pairing core.
        .target(
            name: "TernSession",
            dependencies: [
                "TernCrypto", "TernRendezvous", "TernPairing", "TernTLS", "TernSTUN", "TernICE", "TernTURN", "TernSDP", "TernDTLS", "TernSCTP",
                "TernDataChannel", "TernCollections",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ]
        ),

        // LAN mode's discovery: the beacon message codec (sans-IO) and the
        // multicast sockets that announce and find a sender's embedded rendezvous.
        .target(
            name: "TernLAN",
            dependencies: [
                "TernWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),

        .executableTarget(
            name: "tern",
            dependencies: [
                "TernLAN", "CQRencode", "TernRendezvous", "TernPairing", "TernRelay", "TernSession", "TernTLS", "TernICE", "TernTURN", "TernTransfer", "TernDTLS", "TernDataChannel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ]
        ),

        // The data path's benchmark (`make bench`), not shipped.
        .executableTarget(
            name: "tern-bench",
            dependencies: ["TernSession", "TernPairing", "TernRendezvous", "TernICE", "TernDTLS", "TernSCTP", "TernDataChannel"]
        ),

        // Shared test helpers: locating the built binary, running processes,
        // starting a relay, free ports.
        .target(name: "TernTestSupport", path: "Tests/TernTestSupport"),

        .testTarget(name: "TernCryptoTests", dependencies: ["TernCrypto"]),
        .testTarget(name: "TernWireTests", dependencies: ["TernWire"]),
        .testTarget(name: "TernSTUNTests", dependencies: ["TernSTUN", "TernTestSupport"]),
        .testTarget(name: "TernRendezvousTests", dependencies: ["TernRendezvous"]),
        .testTarget(name: "TernPairingTests", dependencies: ["TernPairing", "TernCrypto", "TernTestSupport"]),
        .testTarget(
            name: "TernRelayTests",
            dependencies: ["TernRelay", "TernSession", "TernTestSupport", "TernSTUN"]
        ),
        .testTarget(
            name: "TernSessionTests",
            dependencies: [
                "TernSession", "TernICE", "TernTURN", "TernPairing", "TernRendezvous", "TernRelay", "TernSDP", "TernDTLS",
                "TernDataChannel", "TernCollections", "TernTestSupport",
            ]),
        .testTarget(name: "TernSDPTests", dependencies: ["TernSDP"]),
        .testTarget(name: "TernDTLSTests", dependencies: ["TernDTLS", "COpenSSL"]),
        .testTarget(name: "TernSCTPTests", dependencies: ["TernSCTP", "TernTestSupport"]),
        .testTarget(name: "TernDataChannelTests", dependencies: ["TernDataChannel", "TernSCTP", "TernTestSupport"]),
        .testTarget(name: "TernICETests", dependencies: ["TernICE", "TernSTUN", "TernTestSupport"]),
        .testTarget(name: "TernTURNTests", dependencies: ["TernTURN", "TernSTUN", "COpenSSL", "TernTestSupport"]),
        .testTarget(name: "TernTransferTests", dependencies: ["TernTransfer", "TernCollections", "TernTestSupport"]),
        .testTarget(
            name: "TernLANTests",
            dependencies: [
                "TernLAN", "TernTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        .testTarget(name: "TernCLITests", dependencies: ["TernTestSupport", "TernRendezvous"]),
    ]
)

import Foundation
import NIOCore
import NIOPosix
import Testing
@testable import TernLAN

/// The beacon's sockets on this host, on an ephemeral port (never the real
/// 4748, so parallel tests and a real tern do not hear each other): a
/// unicast query is answered to the asker, and garbage is dropped and
/// counted without ending anything. Nothing here sends to a multicast group.
@Suite struct LANBeaconTests {
    @Test func aUnicastQueryIsAnsweredAndGarbageIsCounted() async throws {
        let sender = try await LANBeacon.open(port: 0)
        defer { Task { await sender.close() } }
        let port = try #require(sender.boundPort)
        let asker = try await LANBeacon.open(port: 0)
        defer { Task { await asker.close() } }

        let answering = Task {
            for await heard in sender.heard {
                if case .query("512", true) = heard.message {
                    try? await sender.send(.announce(nameplate: "512", port: 40_000), to: heard.from)
                    return
                }
            }
        }
        let to = try SocketAddress(ipAddress: "127.0.0.1", port: port)
        // Garbage first: dropped and counted, and the beacon keeps going.
        let raw = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        var junk = raw.allocator.buffer(capacity: 4)
        junk.writeBytes([0xde, 0xad, 0xbe, 0xef])
        try await raw.writeAndFlush(AddressedEnvelope(remoteAddress: to, data: junk)).get()
        try await raw.close()
        try await asker.send(.query(nameplate: "512", unicastReply: true), to: to)

        var answer: LANMessage?
        for await heard in asker.heard {
            answer = heard.message
            break
        }
        #expect(answer == .announce(nameplate: "512", port: 40_000))
        await answering.value
        #expect(sender.dropped == 1)
    }
}

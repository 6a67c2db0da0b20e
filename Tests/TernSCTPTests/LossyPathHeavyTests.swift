import Testing
import TernTestSupport
@testable import TernSCTP

/// Two associations over a virtual 40 ms path losing 1% of packets each
/// way, on a virtual clock: the time the transfer takes is simulated, not
/// measured, so the comparison is exact and repeatable.
struct LossyPathHeavyTests {
    /// Virtual time to move `bytes` in 256 KiB messages (the sender keeps at
    /// most 512 KiB queued, as SecureChannels does), and the bytes received.
    static func transfer<C: SCTPCongestionControl>(_: C.Type, bytes total: Int, loss: Double, seed: UInt64) throws -> (time: Duration, received: Int, intact: Bool) {
        typealias Association = SCTPAssociation<C>
        var random = SplitMix64(seed: seed)
        // A 1 MiB window keeps the virtual link's queue short (it is searched linearly).
        let configuration = Association.Configuration(receiveWindow: 1 << 20)
        var sides = [Association(configuration: configuration, random: &random), Association(configuration: configuration, random: &random)]
        var link = VirtualLink<Association.Packet>(seed: seed &+ 1)
        link.delay = .milliseconds(20)
        var now: Duration = .zero
        var received = 0
        var intact = true
        var expectedByte: UInt8 = 0
        func pump() {
            for index in 0..<2 {
                while let packet = sides[index].pollTransmit(now: now) { link.send(packet, to: 1 - index, now: now) }
                while sides[index].pollEvent() != nil {}
                while let message = sides[index].pollMessage() {
                    guard index == 1 else { continue }
                    received += message.payload.count
                    // Each message is filled with its index: order and content.
                    if message.payload.first != expectedByte || message.payload.last != expectedByte { intact = false }
                    expectedByte &+= 1
                }
            }
        }
        func advance(to limit: Duration) {
            pump()
            while now < limit {
                var next = link.nextArrival
                for side in sides { if let deadline = side.nextDeadline { next = next.map { min($0, deadline) } ?? deadline } }
                guard let due = next, due <= limit else { now = limit; break }
                now = max(now, due)
                if let packet = link.takeDue(now: now) {
                    sides[packet.to].handleChunks(packet.packet.chunks, verificationTag: packet.packet.verificationTag, now: now)
                }
                for index in 0..<2 { sides[index].advanceTime(now: now) }
                pump()
            }
            for index in 0..<2 { sides[index].advanceTime(now: now) }
            pump()
        }
        sides[0].connect(now: .zero)
        while !(sides[0].state == .established && sides[1].state == .established) && now < .seconds(5) {
            advance(to: now + .milliseconds(10))
        }
        link.loss = loss
        let start = now
        var queued = 0
        var index: UInt8 = 0
        while received < total && now < start + .seconds(300) {
            while queued < total && sides[0].bufferedAmount(stream: 1) < 512 << 10 {
                try sides[0].send(stream: 1, ppid: 53, payload: [UInt8](repeating: index, count: 256 << 10), now: now)
                index &+= 1
                queued += 256 << 10
            }
            advance(to: now + .milliseconds(1))
        }
        return (now - start, received, intact)
    }

    @Test("at 1% loss on a 40 ms path the loss-tolerant controller is several times faster than RFC 9260's", arguments: [1, 2] as [UInt64])
    func randomLossDoesNotThrottleTheTransfer(seed: UInt64) throws {
        let bytes = 4 << 20
        let standard = try Self.transfer(RFC9260CongestionControl.self, bytes: bytes, loss: 0.01, seed: seed)
        let tolerant = try Self.transfer(LossTolerantCongestionControl.self, bytes: bytes, loss: 0.01, seed: seed)
        #expect(standard.received == bytes && standard.intact)
        #expect(tolerant.received == bytes && tolerant.intact)
        #expect(tolerant.time * 3 < standard.time, "RFC 9260 \(standard.time), tolerant \(tolerant.time)")
    }

    @Test func withoutLossBothControllersTakeTheSameTime() throws {
        let bytes = 4 << 20
        let standard = try Self.transfer(RFC9260CongestionControl.self, bytes: bytes, loss: 0, seed: 3)
        let tolerant = try Self.transfer(LossTolerantCongestionControl.self, bytes: bytes, loss: 0, seed: 3)
        #expect(standard.received == bytes && tolerant.received == bytes && standard.intact && tolerant.intact)
        #expect(standard.time == tolerant.time)
    }
}

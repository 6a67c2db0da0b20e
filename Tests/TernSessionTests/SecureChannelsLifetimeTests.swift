import Testing
import TernDataChannel
@testable import TernSession

/// SecureChannels holds its driver and its DTLS association; the driver's
/// handlers and the association's record closure hold SecureChannels back
/// (strong references, no `unowned(unsafe)`): closing cuts those cycles.
@Suite(.serialized) struct SecureChannelsLifetimeTests {
    @Test func closedChannelsAndTheirDriversAreFreed() async throws {
        weak var offerer: SecureChannels?
        weak var answerer: SecureChannels?
        weak var firstDriver: ConnectivityDriver?
        weak var secondDriver: ConnectivityDriver?
        do {
            let sides = try await SecureChannelsTests.establish()
            offerer = sides.offerer
            answerer = sides.answerer
            firstDriver = sides.drivers[0]
            secondDriver = sides.drivers[1]
            let stream = try await sides.answerer.open(label: "lifetime")
            try await sides.answerer.send([1, 2, 3], on: stream)
            let message = try await sides.offerer.receive()
            #expect(message?.payload == [1, 2, 3])
            await SecureChannelsTests.close(sides)
        }
        // The event loop lets go of the last closures (the sockets' close) soon after.
        for _ in 0..<150 where offerer != nil || answerer != nil || firstDriver != nil || secondDriver != nil {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(offerer == nil && answerer == nil, "SecureChannels outlived its close")
        #expect(firstDriver == nil && secondDriver == nil, "a driver outlived its close")
    }
}

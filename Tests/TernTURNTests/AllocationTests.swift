import Testing
import TernSTUN
import TernTURN

@Suite("Allocate (RFC 8656 §7) and long-term credentials")
struct AllocationTests {
    @Test("allocates after the 401 challenge", arguments: [TURNTransport.udp, .tcp])
    func allocatesAfterChallenge(transport: TURNTransport) throws {
        var harness = Harness(transport: transport)
        harness.start()

        let allocates = harness.server.requests(.allocate)
        try #require(allocates.count == 2)
        // RFC 8656 §7.2: the first request goes without credentials.
        let first = allocates[0].message
        #expect(first.messageIntegrity == nil)
        #expect(first.username == nil)
        #expect(first.attributes.contains(.requestedTransport(17)))
        #expect(first.lifetime == 600)
        // The retry answers the challenge: USERNAME, REALM, NONCE, MESSAGE-INTEGRITY.
        let second = allocates[1].message
        #expect(second.username == harness.client.configuration.username)
        #expect(second.realm == "tern.test")
        #expect(second.nonce == "nonce-0")
        #expect(second.messageIntegrity != nil)
        #expect(second.transactionID != first.transactionID)

        #expect(harness.takeEvents() == [
            .allocated(relayed: FakeTURNServer.relayed, mapped: FakeTURNServer.clientMapped, lifetime: .seconds(600)),
        ])
        #expect(harness.client.relayedAddress == FakeTURNServer.relayed)
        #expect(harness.client.mappedAddress == FakeTURNServer.clientMapped)
        #expect(harness.server.allocationAlive(at: harness.now))
        #expect(harness.client.counters == TURNCounters())
    }

    @Test func retriesWithTheNewNonceAfter438() throws {
        var harness = Harness()
        harness.server.staleNonceAnswers = 1
        harness.start()

        let allocates = harness.server.requests(.allocate)
        try #require(allocates.count == 3)
        #expect(allocates[1].message.nonce == "nonce-0")
        #expect(allocates[2].message.nonce == "nonce-1")
        #expect(harness.takeEvents().first?.isAllocated == true)
    }

    @Test func givesUpAfterBoundedStaleNonceRetries() {
        var harness = Harness(configure: { $0.maximumStaleNonceRetries = 2 })
        harness.server.staleNonceAnswers = 100
        harness.start()

        // One challenge, the signed attempt, two retries.
        #expect(harness.server.requests(.allocate).count == 4)
        #expect(harness.takeEvents() == [.failed(.staleNonceLoop(method: .allocate, retries: 2))])
        #expect(harness.client.nextDeadline == nil)
    }

    @Test("wrong or expired credentials fail with a clear reason", arguments: ["wrong", "expired"])
    func refusedCredentials(kind: String) throws {
        var harness = kind == "wrong"
            ? Harness(password: TestCrypto.base64([UInt8](repeating: 1, count: 20)))
            : Harness(credentialLifetime: -10)
        harness.start()

        let events = harness.takeEvents()
        try #require(events.count == 1)
        let error = try #require(events[0].failure)
        #expect(error == .credentialsRejected(.unauthenticated))
        #expect(error.reason.hasPrefix("the relay's TURN credentials were refused (expired or wrong)"))
        // Exactly one signed attempt: a 401 to credentials is not retried.
        #expect(harness.server.requests(.allocate).count == 2)
        #expect(harness.client.isFinished)
        #expect(throws: TURNError.notAllocated) { try harness.client.send([1], to: Harness.peer, now: harness.now) }
    }

    @Test func credentialsThatExpireLaterRefuseTheRefresh() throws {
        // Valid for 700 s: the Allocate works, the Refresh at 540 s works, the one at 1080 s does not.
        var harness = Harness(credentialLifetime: 700)
        harness.start()
        #expect(harness.takeEvents().first?.isAllocated == true)
        harness.run(until: .seconds(600))
        #expect(harness.takeEvents() == [.refreshed(lifetime: .seconds(600))])
        harness.run(until: .seconds(1200))
        #expect(harness.takeEvents() == [.failed(.credentialsRejected(.unauthenticated))])
    }

    static let refusals: [(STUNErrorCode, TURNError)] = [
        (.allocationMismatch, .allocationMismatch(.allocate)),
        (.allocationQuotaReached, .allocationQuotaReached),
        (.insufficientCapacity, .insufficientCapacity),
        (.forbidden, .forbidden),
        (.wrongCredentials, .credentialsRejected(.wrongCredentials)),
        (.unsupportedTransportProtocol, .unsupportedTransport),
        (STUNErrorCode(code: 599, reason: "Odd"), .serverRefused(method: .allocate, code: STUNErrorCode(code: 599, reason: "Odd"))),
    ]

    @Test("a refused Allocate is a typed failure", arguments: refusals)
    func refusedAllocate(code: STUNErrorCode, expected: TURNError) {
        var harness = Harness()
        harness.server.forcedErrors[.allocate] = code
        harness.start()
        #expect(harness.takeEvents() == [.failed(expected)])
        #expect(!expected.reason.isEmpty)
    }

    @Test func retransmitsOverUDPWhenTheServerDropsTheFirstRequest() throws {
        var harness = Harness()
        harness.server.dropRequests = 1
        harness.start()
        #expect(harness.server.requests.isEmpty)
        #expect(harness.takeEvents().isEmpty)
        // RFC 8489 §6.2.1: the first retransmission after RTO = 500 ms.
        #expect(harness.client.nextDeadline == .milliseconds(500))
        harness.run(until: .milliseconds(499))
        #expect(harness.server.requests.isEmpty)
        harness.run(until: .milliseconds(500))
        #expect(harness.server.requests(.allocate).count == 2)
        #expect(harness.server.requests[0].at == .milliseconds(500))
        #expect(harness.client.counters.retransmissions == 1)
        #expect(harness.takeEvents().first?.isAllocated == true)
    }

    @Test func retransmitsWithTheSameTransactionAndTimesOutAfterRc() throws {
        var harness = Harness()
        harness.server.dropRequests = 1_000
        harness.start()
        harness.run(until: .seconds(60))
        // RFC 8489 §6.2.1: 7 transmissions, then 39.5 s after the first, timeout.
        #expect(harness.client.counters.retransmissions == 6)
        #expect(harness.takeEvents() == [.failed(.timedOut(.allocate))])
    }

    @Test func sendsOnceOverTCPAndTimesOutAfterTi() throws {
        var harness = Harness(transport: .tcp)
        harness.server.dropRequests = 1
        harness.start()
        // RFC 8489 §6.2.2: no retransmission on a reliable transport; Ti = 39.5 s.
        #expect(harness.client.nextDeadline == .milliseconds(39_500))
        harness.run(until: .seconds(60))
        #expect(harness.client.counters.retransmissions == 0)
        #expect(harness.server.requests.isEmpty)
        #expect(harness.takeEvents() == [.failed(.timedOut(.allocate))])
    }

    @Test func dropsASuccessWhoseIntegrityDoesNotVerify() {
        var harness = Harness()
        harness.server.forgeIntegrity = true
        harness.start()
        #expect(harness.takeEvents().isEmpty)
        #expect(harness.client.counters.integrityFailures == 1)
        // The forged answer is ignored, so the transaction keeps retransmitting.
        harness.server.forgeIntegrity = false
        harness.run(until: .seconds(1))
        #expect(harness.client.counters.retransmissions == 1)
        // The server already holds the allocation for this 5-tuple and says
        // 437 to the retransmission (coturn: "Mismatched allocation: wrong
        // transaction ID" to a new one): the client releases it with a
        // Refresh of LIFETIME 0 and asks again (RFC 8656 §7.2, §8).
        #expect(harness.server.requests(.refresh).map(\.message.lifetime) == [0])
        #expect(harness.takeEvents() == [
            .allocated(relayed: FakeTURNServer.relayed(2), mapped: FakeTURNServer.clientMapped, lifetime: .seconds(600)),
        ])
    }

    @Test func ignoresResponsesNobodyAskedFor() throws {
        var harness = Harness.allocated()
        _ = harness.takeEvents()
        let stray = STUNMessage(.successResponse, .allocate, transactionID: .random(),
                                attributes: [.xorRelayedAddress(Harness.peer), .xorMappedAddress(Harness.peer)])
        harness.client.handleDatagram(try stray.encode(), now: harness.now)
        let request = STUNMessage(.request, .binding, transactionID: .random())
        harness.client.handleDatagram(try request.encode(), now: harness.now)
        #expect(harness.client.counters.unexpected == 2)
        #expect(harness.takeEvents().isEmpty)
        #expect(harness.client.relayedAddress == FakeTURNServer.relayed)
    }

    @Test func closedTCPConnectionEndsTheAllocation() {
        var harness = Harness.allocated(transport: .tcp)
        _ = harness.takeEvents()
        harness.client.handleConnectionClosed(now: harness.now)
        #expect(harness.takeEvents() == [.failed(.connectionClosed)])
        #expect(harness.client.nextDeadline == nil)
    }
}

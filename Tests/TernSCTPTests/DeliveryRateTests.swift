import Testing
@testable import TernSCTP

struct DeliveryRateTests {
    /// Chunks of 1000 bytes sent every millisecond (1 MB/s), each
    /// acknowledged 50 ms after it left: the samples read 1 MB/s and 50 ms.
    @Test func aSteadyFlowSamplesItsRateAndRoundTrip() throws {
        var queue = SCTPRetransmissionQueue(initialTSN: TSN(100))
        var sendQueue = SCTPSendQueue()
        for index in 0..<400 {
            sendQueue.enqueue(stream: 0, ppid: 53, payload: [UInt8](repeating: 0, count: 1000), now: .milliseconds(index))
        }
        var samples: [DeliveryRateSample] = []
        for tick in 0..<400 {
            let now = Duration.milliseconds(tick)
            if tick >= 50 {
                // The chunk sent 50 ms ago is acknowledged.
                let cumulative = TSN(100).advanced(by: UInt32(tick - 50))
                let handled = queue.handleSACK(cumulative: cumulative, gapBlocks: [], now: now)
                let outcome = try #require(handled)
                if let sample = outcome.rateSample { samples.append(sample) }
            }
            let next = sendQueue.nextFragment(tsn: queue.nextTSN, maximumPayload: 1200)
            let fragment = try #require(next)
            queue.sent(fragment, now: now)
        }
        let late = try #require(samples.last)
        #expect(late.roundTrip == .milliseconds(50))
        #expect(!late.isAppLimited)
        let rate = try #require(late.rate)
        #expect(abs(rate - 1e6) < 0.03e6, "\(rate)")
        #expect(late.newlyAcknowledged == 1000 && late.newlyLost == 0)
    }

    /// A sender that ran out of data marks what it sends next app-limited,
    /// until what was in flight then is delivered.
    @Test func samplesAfterTheSenderRanDryAreAppLimited() throws {
        var sampler = DeliveryRateSampler()
        let first = sampler.sending(size: 1000, inFlight: 0, now: .zero)
        sampler.applicationLimited(inFlight: 1000)
        let second = sampler.sending(size: 1000, inFlight: 1000, now: .milliseconds(10))
        #expect(!first.isAppLimited && second.isAppLimited)
        sampler.acknowledged(size: 1000, state: first, sentAt: .zero, now: .milliseconds(50))
        let firstSample = sampler.finishSACK(now: .milliseconds(50))
        let one = try #require(firstSample)
        #expect(!one.isAppLimited)
        // 2000 bytes delivered now: past the mark, so new sends are not app-limited.
        sampler.acknowledged(size: 1000, state: second, sentAt: .milliseconds(10), now: .milliseconds(60))
        let secondSample = sampler.finishSACK(now: .milliseconds(60))
        let two = try #require(secondSample)
        #expect(two.isAppLimited)
        let third = sampler.sending(size: 1000, inFlight: 0, now: .milliseconds(70))
        #expect(!third.isAppLimited)
    }

    /// Losses marked by a SACK are reported with its sample.
    @Test func lossesReachTheSample() throws {
        var sampler = DeliveryRateSampler()
        let state = sampler.sending(size: 1000, inFlight: 0, now: .zero)
        sampler.markLost(1200)
        sampler.acknowledged(size: 1000, state: state, sentAt: .zero, now: .milliseconds(40))
        let finished = sampler.finishSACK(now: .milliseconds(40))
        let sample = try #require(finished)
        #expect(sample.newlyLost == 1200 && sample.lostSinceSend == 1200)
        let nothing = sampler.finishSACK(now: .milliseconds(41))
        #expect(nothing == nil, "nothing new: no sample")
    }
}

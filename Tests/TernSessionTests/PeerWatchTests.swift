import Testing
@testable import TernSession

/// The waits above ICE, driven with a virtual clock.
@Suite struct PeerWatchTests {
    @Test func eachSetupStageRunsOutAfterItsLimitWithItsOwnSentence() {
        var watch = PeerWatch(limits: .init(), now: .seconds(100))
        #expect(watch.nextDeadline(busy: false) == .seconds(110))
        #expect(watch.verdict(now: .seconds(109), busy: false) == nil)
        // Datagrams that keep coming (a handshake retransmitted) do not extend a stage.
        watch.heard(now: .seconds(109))
        #expect(watch.verdict(now: .seconds(110), busy: false)
            == "the other side did not complete the secure handshake (DTLS) within 10 s")
        watch.enter(.association, now: .seconds(105))
        #expect(watch.verdict(now: .seconds(114), busy: false) == nil)
        #expect(watch.verdict(now: .seconds(115), busy: false)
            == "the other side did not set up the data channels (SCTP) within 10 s")
    }

    @Test func onceUpOnlyABusyAssociationMindsSilence() {
        var watch = PeerWatch(limits: .init(), now: .zero)
        watch.enter(.up, now: .seconds(1))
        watch.heard(now: .seconds(2))
        // Idle: left to consent freshness (RFC 7675), however long.
        #expect(watch.nextDeadline(busy: false) == nil)
        #expect(watch.verdict(now: .seconds(60), busy: false) == nil)
        // Busy: five seconds of nothing at all from the peer.
        #expect(watch.nextDeadline(busy: true) == .seconds(7))
        #expect(watch.verdict(now: .milliseconds(6999), busy: true) == nil)
        #expect(watch.verdict(now: .seconds(7), busy: true) == "the other side stopped responding (nothing received for 5 s)")
        // Anything from the peer starts the count again.
        watch.heard(now: .seconds(6))
        #expect(watch.verdict(now: .seconds(7), busy: true) == nil)
        #expect(watch.nextDeadline(busy: true) == .seconds(11))
    }

    /// The old pair is silent while an ICE restart looks for a new one: that
    /// silence is no verdict (the restart's own deadline decides), and the
    /// new pair has the whole limit from its selection.
    @Test func silenceDuringAnICERestartIsNoVerdict() {
        var watch = PeerWatch(limits: .init(), now: .zero)
        watch.enter(.up, now: .seconds(1))
        watch.heard(now: .seconds(2))
        watch.restart(underway: true, now: .milliseconds(4500))
        #expect(watch.nextDeadline(busy: true) == nil)
        #expect(watch.verdict(now: .seconds(7), busy: true) == nil)
        #expect(watch.verdict(now: .seconds(14), busy: true) == nil)
        // The restart selected a pair at 14 s: five seconds from then.
        watch.restart(underway: false, now: .seconds(14))
        #expect(watch.nextDeadline(busy: true) == .seconds(19))
        #expect(watch.verdict(now: .milliseconds(18999), busy: true) == nil)
        #expect(watch.verdict(now: .seconds(19), busy: true) == "the other side stopped responding (nothing received for 5 s)")
        // A restart's end that comes without one begun changes nothing.
        var quiet = PeerWatch(limits: .init(), now: .zero)
        quiet.enter(.up, now: .zero)
        quiet.restart(underway: false, now: .seconds(3))
        #expect(quiet.nextDeadline(busy: true) == .seconds(5))
    }

    /// Silence that comes due while ICE is still recovering the path (it
    /// fails over, or will restart) is looked at again later; anything heard
    /// meanwhile ends the deferral.
    @Test func silenceLeftToICEIsLookedAtAgainLater() {
        var watch = PeerWatch(limits: .init(), now: .zero)
        watch.enter(.up, now: .zero)
        #expect(watch.verdict(now: .seconds(5), busy: true) != nil && watch.isSilenceVerdict(now: .seconds(5), busy: true))
        watch.deferSilence(until: .milliseconds(5250))
        #expect(watch.nextDeadline(busy: true) == .milliseconds(5250))
        #expect(watch.verdict(now: .milliseconds(5200), busy: true) == nil)
        #expect(watch.verdict(now: .milliseconds(5250), busy: true) != nil)
        watch.heard(now: .seconds(6))
        #expect(watch.nextDeadline(busy: true) == .seconds(11))
        // A setup stage's verdict is never the silence one.
        let early = PeerWatch(limits: .init(), now: .zero)
        #expect(early.verdict(now: .seconds(10), busy: true) != nil && !early.isSilenceVerdict(now: .seconds(10), busy: true))
    }

    @Test func limitsAreConfigurable() {
        var limits = PeerWatch.Limits()
        limits.silence = .milliseconds(1500)
        var watch = PeerWatch(limits: limits, now: .zero)
        watch.enter(.up, now: .zero)
        #expect(watch.verdict(now: .milliseconds(1500), busy: true) == "the other side stopped responding (nothing received for 1500 ms)")
    }
}

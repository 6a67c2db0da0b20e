/// Retransmission timing of one STUN client transaction over UDP (RFC 8489
/// §6.2.1), as a value: the driver feeds it the time and it says when to send.
///
/// Time is a `Duration` measured from any origin the driver picks (its event
/// loop's uptime, a virtual clock in tests); the transaction never reads a
/// clock. Matching responses to the transaction id is the caller's job; call
/// `complete()` when one arrives.
///
///     var transaction = STUNTransaction(now: now)
///     // whenever `transaction.deadline` passes, or at once:
///     switch transaction.poll(now: now) {
///     case .transmit: send(request)
///     case .wait(let until): arm(timer: until)
///     case .timedOut: fail()
///     case .completed: break
///     }
public struct STUNTransaction: Hashable, Sendable {
    public struct Configuration: Hashable, Sendable {
        /// The first retransmission timeout. RFC 8489 §6.2.1 suggests 500 ms
        /// when nothing is known about the path; ICE derives its own
        /// (RFC 8445 §14.3).
        public var initialRTO: Duration
        /// Rc, the total number of transmissions (RFC 8489 §6.2.1: default 7).
        public var maxTransmissions: Int
        /// Rm: after the last transmission wait Rm * initialRTO for a response
        /// (RFC 8489 §6.2.1: default 16).
        public var finalWaitMultiplier: Int
        /// True over TCP or TLS: send once, then wait `reliableTimeout`
        /// (RFC 8489 §6.2.2, Ti = 39.5 s).
        public var reliable: Bool
        public var reliableTimeout: Duration

        public init(
            initialRTO: Duration = .milliseconds(500),
            maxTransmissions: Int = 7,
            finalWaitMultiplier: Int = 16,
            reliable: Bool = false,
            reliableTimeout: Duration = .milliseconds(39_500)
        ) {
            self.initialRTO = initialRTO
            self.maxTransmissions = max(1, maxTransmissions)
            self.finalWaitMultiplier = max(0, finalWaitMultiplier)
            self.reliable = reliable
            self.reliableTimeout = reliableTimeout
        }
    }

    /// What the driver should do now.
    public enum Action: Hashable, Sendable {
        /// Send the request (again); then poll at `deadline`.
        case transmit
        /// Nothing to do before this time.
        case wait(until: Duration)
        /// No response after the last wait: the transaction failed (RFC 8489 §6.2.1).
        case timedOut
        /// `complete()` was called.
        case completed
    }

    enum State: Hashable, Sendable {
        /// `sent` transmissions so far; next action at `deadline`; `rto` is the
        /// interval to use after the next transmission.
        case pending(sent: Int, deadline: Duration, rto: Duration)
        case completed(sent: Int)
        case timedOut(sent: Int)
    }

    public let configuration: Configuration
    private(set) var state: State

    /// A transaction whose first transmission is due at `now`.
    public init(now: Duration, configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.state = .pending(sent: 0, deadline: now, rto: configuration.initialRTO)
    }

    /// When the driver must poll next; nil once completed or timed out.
    public var deadline: Duration? {
        if case .pending(_, let deadline, _) = state { return deadline }
        return nil
    }

    /// Transmissions so far.
    public var transmissions: Int {
        switch state {
        case .pending(let sent, _, _), .completed(let sent), .timedOut(let sent): return sent
        }
    }

    /// Advances to `now` and says what to do.
    public mutating func poll(now: Duration) -> Action {
        switch state {
        case .completed:
            return .completed
        case .timedOut:
            return .timedOut
        case .pending(let sent, let deadline, let rto):
            guard now >= deadline else { return .wait(until: deadline) }
            if configuration.reliable {
                // RFC 8489 §6.2.2: reliable transports are not retransmitted.
                guard sent == 0 else {
                    state = .timedOut(sent: sent)
                    return .timedOut
                }
                state = .pending(sent: 1, deadline: now + configuration.reliableTimeout, rto: rto)
                return .transmit
            }
            guard sent < configuration.maxTransmissions else {
                state = .timedOut(sent: sent)
                return .timedOut
            }
            let sentNow = sent + 1
            if sentNow == configuration.maxTransmissions {
                // RFC 8489 §6.2.1: after the last request, wait Rm times the RTO.
                state = .pending(sent: sentNow, deadline: now + configuration.initialRTO * configuration.finalWaitMultiplier, rto: rto)
            } else {
                // RFC 8489 §6.2.1: the RTO doubles after each retransmission.
                // (Capped at an hour, only so that an absurd Rc cannot overflow.)
                state = .pending(sent: sentNow, deadline: now + rto, rto: min(rto * 2, .seconds(3600)))
            }
            return .transmit
        }
    }

    /// A response arrived: stop retransmitting.
    public mutating func complete() {
        state = .completed(sent: transmissions)
    }

    /// The offsets from the start at which a transaction that never gets an
    /// answer transmits, and the offset at which it times out (RFC 8489 §6.2.1
    /// gives 0, 500, 1500, 3500, 7500, 15500, 31500 and 39500 ms for 500 ms).
    public static func schedule(_ configuration: Configuration = Configuration()) -> (transmissions: [Duration], timeout: Duration) {
        var transaction = STUNTransaction(now: .zero, configuration: configuration)
        var transmissions: [Duration] = []
        var now = Duration.zero
        while true {
            switch transaction.poll(now: now) {
            case .transmit:
                transmissions.append(now)
            case .wait(let until):
                now = until
            case .timedOut, .completed:
                return (transmissions, now)
            }
        }
    }
}

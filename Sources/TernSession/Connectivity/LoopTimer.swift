import NIOCore

/// The one timer a driver keeps for its sans-IO cores: deadlines are
/// durations since `origin`, as the cores count time. An armed timer is only
/// replaced by an earlier deadline: firing early is harmless (the cores do
/// nothing before their deadlines and the driver arms the timer again), and
/// not rescheduling on every packet keeps the data path free of timer churn.
///
/// Used on its loop only.
final class LoopTimer: @unchecked Sendable {
    private let loop: EventLoop
    private let origin: NIODeadline
    private var scheduled: Scheduled<Void>?
    private var deadline: Duration?

    init(loop: EventLoop, origin: NIODeadline) {
        self.loop = loop
        self.origin = origin
    }

    /// Makes sure `fire` runs at `deadline` or earlier (nothing if nil).
    func arm(at deadline: Duration?, _ fire: @escaping @Sendable () -> Void) {
        guard let deadline else { return }
        if scheduled != nil, let current = self.deadline, current <= deadline { return }
        scheduled?.cancel()
        self.deadline = deadline
        let (seconds, attoseconds) = deadline.components
        let nanoseconds = seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000
        scheduled = loop.scheduleTask(deadline: origin + .nanoseconds(nanoseconds)) { [self] in
            scheduled = nil
            self.deadline = nil
            fire()
        }
    }

    func cancel() {
        scheduled?.cancel()
        scheduled = nil
        deadline = nil
    }
}

import Dispatch
import Foundation
import NIOConcurrencyHelpers
import TernSession

/// Ends a job early: on Ctrl-C, SIGTERM or at the --timeout deadline. The
/// first of them is reported; within `grace` the peer is told (on the data
/// channel, letting a transfer save its resume state) and the mailbox is
/// closed (which releases the nameplate, so a pre-agreed code can be used
/// again at once); then the process exits with the reason's code. Nothing
/// the job waits for (a peer that stopped halfway, a handshake that is
/// never answered) can keep the process past the grace.
final class EarlyEnd: Sendable {
    /// The most time between the reason and the exit.
    static let grace: DispatchTimeInterval = .milliseconds(1500)

    private let output: Output
    private let reason = NIOLockedValueBox<CLIError?>(nil)

    init(output: Output) {
        self.output = output
    }

    /// The reason, once the process is ending.
    var happened: CLIError? { reason.withLockedValue { $0 } }

    /// Ends the process for `why`, unless it is ending already.
    func begin(_ why: CLIError) {
        let first = reason.withLockedValue { current -> Bool in
            guard current == nil else { return false }
            current = why
            return true
        }
        guard first else { return }
        InterruptHook.markInterrupted()
        _ = output.fail(why)
        let code = why.exit.rawValue
        // The backstop runs on a dispatch queue, not the cooperative pool
        // (a job may be holding its threads).
        DispatchQueue.global().asyncAfter(deadline: .now() + Self.grace) { exit(code) }
        Task.detached {
            // At most 700 ms for the peer, then 500 ms for the relay.
            await InterruptHook.run()
            await RelayConnection.leaveAll(mood: .errory)
            exit(code)
        }
    }

    /// Waits for the exit `begin` started: the job's own ending (its channel
    /// was closed under it) must not report anything or pick the exit code.
    func waitForExit() async -> Never {
        while true {
            try? await Task.sleep(for: .seconds(60))
        }
    }

    /// Calls `begin` with `why` when `number` arrives (its default action,
    /// ending the process at once, is turned off).
    func watch(signal number: Int32, as why: CLIError) -> DispatchSourceSignal {
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler { [self] in begin(why) }
        source.resume()
        return source
    }

    /// Calls `begin` when `seconds` have passed.
    func deadline(after seconds: Double) -> DispatchSourceTimer {
        let timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + seconds)
        timer.setEventHandler { [self] in begin(CLIError(.unreachable, "timed out after \(formatSeconds(seconds))")) }
        timer.resume()
        return timer
    }
}

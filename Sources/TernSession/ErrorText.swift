import Foundation
import NIOCore
import NIOPosix

/// Plain words for errors from the system and SwiftNIO, for messages a
/// person reads: "connection refused", not "connection reset (error set):
/// Connection refused (errno: 111)".
public enum ErrorText {
    public static func describe(_ error: Error) -> String {
        if let error = error as? IOError { return errnoText(error.errnoCode) }
        if let error = error as? NIOConnectionError {
            if let first = error.connectionErrors.first { return describe(first.error) }
            if error.dnsAAAAError != nil || error.dnsAError != nil { return "the name could not be resolved" }
            return "no address to connect to"
        }
        if let error = error as? ChannelError { return channelText(error) }
        if let error = error as? SessionError { return error.message }
        return "\(error)"
    }

    /// strerror's text, starting lowercase to sit inside a sentence.
    static func errnoText(_ code: Int32) -> String {
        guard let raw = strerror(code) else { return "system error \(code)" }
        let text = String(cString: raw)
        guard let first = text.first else { return "system error \(code)" }
        return first.lowercased() + text.dropFirst()
    }

    static func channelText(_ error: ChannelError) -> String {
        switch error {
        case .connectTimeout: return "the connection attempt timed out"
        case .eof, .inputClosed: return "the other end closed the connection"
        case .ioOnClosedChannel, .alreadyClosed, .outputClosed: return "the connection is closed"
        default: return "\(error)"
        }
    }
}

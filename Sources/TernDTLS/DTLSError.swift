import COpenSSL
import TernCrypto

/// Everything that can go wrong in TernDTLS: building the certificate or the
/// OpenSSL context, a fingerprint that does not parse or does not match, a
/// handshake the peer or the network ended, a protocol error after it, or a
/// call the association cannot honour in its state.
///
/// One error type for the module. The cases are the stable code a caller
/// switches on; `reason` is one sentence for a log line or a user. Nothing in
/// it is secret: fingerprints are public (they travel in the SDP).
public enum DTLSError: Error, Hashable, Sendable, CustomStringConvertible {
    // MARK: Setup

    /// A configuration value out of range (the text says which).
    case invalidConfiguration(String)
    /// OpenSSL could not generate the key pair or sign the certificate.
    case certificateGenerationFailed(String)
    /// OpenSSL refused a step of the context or connection setup.
    case setupFailed(String)
    /// A fingerprint that is not `sha-256` followed by 32 colon-separated
    /// hex bytes (RFC 8122 §5).
    case malformedFingerprint(String)
    /// A fingerprint with a hash function other than sha-256, which is the
    /// only one this module computes (RFC 8122 §5 allows several).
    case unsupportedFingerprintAlgorithm(String)

    // MARK: Handshake

    /// The peer's certificate does not have the fingerprint its sealed SDP
    /// announced (RFC 8122 §5, RFC 8842 §5.1): someone else answered, or the
    /// descriptions were mixed up. The handshake stops before any key is used.
    case fingerprintMismatch(received: DTLSFingerprint)
    /// The peer finished its part of the handshake without a certificate.
    case peerCertificateMissing
    /// The peer sent a fatal alert (RFC 5246 §7.2); the code is the
    /// AlertDescription. Code 0 (close_notify) means the peer closed before
    /// the handshake finished.
    case peerAlert(UInt8)
    /// The handshake did not finish within the configured time, or OpenSSL
    /// gave up after its own retransmission limit (RFC 6347 §4.2.4).
    case handshakeTimedOut
    /// The handshake failed for another reason; OpenSSL's words for it.
    case handshakeFailed(String)

    // MARK: Established association

    /// A fatal protocol error after the handshake (for instance an
    /// authenticated message of a kind DTLS 1.2 does not allow here);
    /// OpenSSL's words for it.
    case protocolViolation(String)

    // MARK: Calls

    /// `write` before the handshake finished or after the association ended.
    case notConnected
    /// `write` with more bytes than one record carries inside the MTU
    /// (RFC 6347 §4.1.1: a record must not span datagrams).
    case payloadTooLarge(size: Int, maximum: Int)
    /// OpenSSL failed where it should not (allocation, internal state);
    /// its words for it.
    case internalFailure(String)

    public var reason: String {
        switch self {
        case .invalidConfiguration(let what):
            return "invalid DTLS configuration: \(what)"
        case .certificateGenerationFailed(let why):
            return "could not generate the DTLS certificate: \(why)"
        case .setupFailed(let why):
            return "could not set up DTLS: \(why)"
        case .malformedFingerprint(let text):
            return "malformed certificate fingerprint \"\(text)\": expected sha-256 and 32 hex bytes separated by colons"
        case .unsupportedFingerprintAlgorithm(let name):
            return "certificate fingerprint hash \"\(name)\" is not supported (only sha-256 is)"
        case .fingerprintMismatch(let received):
            return "the peer's certificate (\(received.sdpValue)) is not the one its session description announced"
        case .peerCertificateMissing:
            return "the peer did not present a certificate"
        case .peerAlert(DTLSAlert.closeNotify):
            return "the peer closed the DTLS session (close_notify) before the handshake finished"
        case .peerAlert(let code):
            return "the peer ended the DTLS session with a fatal \(DTLSAlert.name(of: code)) alert (\(code))"
        case .handshakeTimedOut:
            return "the DTLS handshake did not complete in time"
        case .handshakeFailed(let why):
            return "the DTLS handshake failed: \(why)"
        case .protocolViolation(let why):
            return "the peer broke the DTLS protocol: \(why)"
        case .notConnected:
            return "the DTLS association is not connected"
        case .payloadTooLarge(let size, let maximum):
            return "\(size) bytes do not fit one DTLS record inside the MTU (at most \(maximum))"
        case .internalFailure(let why):
            return "DTLS internal failure: \(why)"
        }
    }

    public var description: String { reason }
}

/// TLS AlertDescription names (RFC 5246 §7.2, RFC 5746 §4.1, RFC 7301 §3.2)
/// for error reasons.
enum DTLSAlert {
    /// AlertLevel warning (RFC 5246 §7.2), which close_notify travels as.
    static let warningLevel: UInt8 = 1
    /// AlertLevel fatal (RFC 5246 §7.2).
    static let fatalLevel: UInt8 = 2
    static let closeNotify: UInt8 = 0
    static let badCertificate: UInt8 = 42

    static func name(of code: UInt8) -> String {
        switch code {
        case 0: return "close_notify"
        case 10: return "unexpected_message"
        case 20: return "bad_record_mac"
        case 22: return "record_overflow"
        case 40: return "handshake_failure"
        case 42: return "bad_certificate"
        case 43: return "unsupported_certificate"
        case 44: return "certificate_revoked"
        case 45: return "certificate_expired"
        case 46: return "certificate_unknown"
        case 47: return "illegal_parameter"
        case 48: return "unknown_ca"
        case 49: return "access_denied"
        case 50: return "decode_error"
        case 51: return "decrypt_error"
        case 70: return "protocol_version"
        case 71: return "insufficient_security"
        case 80: return "internal_error"
        case 86: return "inappropriate_fallback"
        case 90: return "user_canceled"
        case 100: return "no_renegotiation"
        case 110: return "unsupported_extension"
        case 120: return "no_application_protocol"
        default: return "unknown"
        }
    }
}

/// OpenSSL's error queue (TernCrypto drains it) read for what DTLS needs:
/// the peer's alert, OpenSSL's give-up on retransmission, a missing
/// certificate.
extension OpenSSLErrorQueue {
    /// The alert the peer sent, if one of the entries says a fatal alert was
    /// received: OpenSSL reports it as reason SSL_AD_REASON_OFFSET + code.
    static func receivedAlert(in entries: [Entry]) -> UInt8? {
        for entry in entries where entry.library == ERR_LIB_SSL {
            let code = Int(entry.reason) - Int(SSL_AD_REASON_OFFSET)
            if (0...255).contains(code) { return UInt8(code) }
        }
        return nil
    }

    /// Whether OpenSSL gave up retransmitting (RFC 6347 §4.2.4).
    static func timedOut(_ entries: [Entry]) -> Bool {
        entries.contains { $0.library == ERR_LIB_SSL && $0.reason == SSL_R_READ_TIMEOUT_EXPIRED }
    }

    /// Whether the peer sent no certificate although one was required.
    static func peerSentNoCertificate(_ entries: [Entry]) -> Bool {
        entries.contains { $0.library == ERR_LIB_SSL && $0.reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE }
    }

    /// Drains the queue into a setup error.
    static func setupError(_ what: String) -> DTLSError {
        .setupFailed(text(drain(), fallback: what))
    }

    /// Drains the queue into a certificate generation error.
    static func certificateError(_ what: String) -> DTLSError {
        .certificateGenerationFailed(text(drain(), fallback: what))
    }
}

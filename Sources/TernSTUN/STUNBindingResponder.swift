/// The relay's STUN responder: answers Binding requests with the address they
/// came from (RFC 8489 §6.3.1, §14.2), statelessly, with no credentials.
///
/// Stateless and allocation-light: one decode and one small response per
/// request. The response is at most a few dozen bytes, so a spoofed source
/// gets little amplification.
public struct STUNBindingResponder: Sendable {
    /// Why a datagram got no answer; a relay counts these.
    public enum DropReason: Hashable, Sendable {
        /// Not a valid STUN message (header checks, RFC 8489 §6.3), or a
        /// FINGERPRINT that does not match (RFC 8489 §7.3 drops those too).
        case malformed(STUNError)
        /// Indications and responses are not answered (RFC 8489 §6.3.2, §6.3.3).
        case notARequest(STUNClass)
    }

    public enum Outcome: Hashable, Sendable {
        /// Send these bytes back to the source.
        case reply([UInt8])
        /// Send nothing.
        case drop(DropReason)
    }

    /// SOFTWARE in every response (RFC 8489 §14.14).
    public var software: String

    public init(software: String = "tern") {
        self.software = software
    }

    /// Decides what to do with one datagram received from `source`.
    public func handle(_ datagram: ArraySlice<UInt8>, from source: STUNAddress) -> Outcome {
        // RFC 8489 §6.3: a message failing the basic header checks is
        // silently discarded.
        let header: STUNHeader
        do {
            header = try STUNHeader.decode(datagram)
        } catch {
            return .drop(.malformed(error))
        }
        guard header.messageClass == .request else { return .drop(.notARequest(header.messageClass)) }

        let request: STUNMessage
        do {
            request = try STUNMessage.decode(datagram)
        } catch {
            // A good header with bad attributes: the request is malformed, and
            // the answer to a malformed request is 400 (RFC 8489 §14.8).
            return reply(to: header, error: .badRequest)
        }
        // RFC 8489 §7.3: a FINGERPRINT that does not match means this is not
        // a STUN message meant for us; discard without an answer.
        if request.fingerprint != nil {
            do {
                try STUNMessage.checkFingerprint(of: datagram)
            } catch {
                return .drop(.malformed(error))
            }
        }
        // Only Binding is served here (TURN is coturn's job); an error answer
        // ends the client's transaction at once instead of after 39.5 s.
        guard header.method == .binding else { return reply(to: header, error: .badRequest) }

        // RFC 8489 §6.3.1.1: unknown comprehension-required attributes get 420
        // listing them in UNKNOWN-ATTRIBUTES.
        var unknown: [STUNAttributeType] = []
        for type in request.unknownComprehensionRequired where !unknown.contains(type) {
            unknown.append(type)
        }
        if !unknown.isEmpty {
            return reply(to: header, error: .unknownAttribute, extra: [.unknownAttributes(unknown)])
        }

        // RFC 8489 §6.3.1.1 / §14.2: the success response carries the
        // request's source as XOR-MAPPED-ADDRESS, same transaction id.
        let response = STUNMessage(
            .successResponse, .binding, transactionID: header.transactionID,
            attributes: [.xorMappedAddress(source), .software(software)]
        )
        return encode(response)
    }

    public func handle(_ datagram: [UInt8], from source: STUNAddress) -> Outcome {
        handle(datagram[...], from: source)
    }

    /// The bytes to send back, or nil to drop the datagram.
    public func respond(to datagram: [UInt8], from source: STUNAddress) -> [UInt8]? {
        if case .reply(let bytes) = handle(datagram[...], from: source) { return bytes }
        return nil
    }

    /// `respond(to:from:)` with SOFTWARE "tern".
    public static func respond(to datagram: [UInt8], from source: STUNAddress) -> [UInt8]? {
        STUNBindingResponder().respond(to: datagram, from: source)
    }

    private func reply(to header: STUNHeader, error: STUNErrorCode, extra: [STUNAttribute] = []) -> Outcome {
        // RFC 8489 §6.3.1.1: the error response has the request's method and
        // transaction id and an ERROR-CODE.
        let response = STUNMessage(
            .errorResponse, header.method, transactionID: header.transactionID,
            attributes: [.errorCode(error)] + extra + [.software(software)]
        )
        return encode(response)
    }

    private func encode(_ response: STUNMessage) -> Outcome {
        do {
            return .reply(try response.encode(fingerprint: true))
        } catch {
            // Only reachable with a SOFTWARE string over 64 KiB.
            return .drop(.malformed(error))
        }
    }
}

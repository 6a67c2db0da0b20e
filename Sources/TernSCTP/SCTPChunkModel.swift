/// The chunks the association reads and writes, as values (RFC 9260 §3.3,
/// RFC 3758 §3.2, RFC 6525 §3-4). The packet codec turns them into bytes
/// and back; the association never sees raw bytes except cookies and
/// heartbeat information, which it wrote itself, and the information of
/// error causes, which it only describes.
public enum SCTPChunkModel: Sendable, Equatable {
    public struct InitFields: Sendable, Equatable {
        public var initiateTag: UInt32
        public var receiveWindow: UInt32
        public var outboundStreams: UInt16
        public var inboundStreams: UInt16
        public var initialTSN: TSN
        /// RFC 3758 §3.1: Forward-TSN-Supported parameter present.
        public var forwardTSNSupported: Bool
        /// RFC 6525 §4: RE-CONFIG listed in Supported Extensions.
        public var reconfigSupported: Bool
        /// RFC 9653: Zero Checksum Acceptable (with the DTLS alternate error detection method).
        public var zeroChecksumAcceptable: Bool
        /// RFC 9260 Appendix A: the ECN Capable parameter.
        public var ecnCapable: Bool

        public init(
            initiateTag: UInt32, receiveWindow: UInt32, outboundStreams: UInt16, inboundStreams: UInt16, initialTSN: TSN,
            forwardTSNSupported: Bool = true, reconfigSupported: Bool = true, zeroChecksumAcceptable: Bool = false,
            ecnCapable: Bool = false
        ) {
            self.initiateTag = initiateTag
            self.receiveWindow = receiveWindow
            self.outboundStreams = outboundStreams
            self.inboundStreams = inboundStreams
            self.initialTSN = initialTSN
            self.forwardTSNSupported = forwardTSNSupported
            self.reconfigSupported = reconfigSupported
            self.zeroChecksumAcceptable = zeroChecksumAcceptable
            self.ecnCapable = ecnCapable
        }
    }

    public struct SACKFields: Sendable, Equatable {
        public var cumulativeTSN: TSN
        public var receiveWindow: UInt32
        public var gapBlocks: [GapBlock]
        public var duplicates: [TSN]

        public init(cumulativeTSN: TSN, receiveWindow: UInt32, gapBlocks: [GapBlock], duplicates: [TSN]) {
            self.cumulativeTSN = cumulativeTSN
            self.receiveWindow = receiveWindow
            self.gapBlocks = gapBlocks
            self.duplicates = duplicates
        }
    }

    public struct GapBlock: Sendable, Equatable {
        public var start: UInt16
        public var end: UInt16
        public init(start: UInt16, end: UInt16) {
            self.start = start
            self.end = end
        }
    }

    /// RFC 6525 §4.1 (outgoing SSN reset request) and §4.4 (response).
    public enum Reconfig: Sendable, Equatable {
        case outgoingReset(requestSequence: UInt32, responseSequence: UInt32, lastTSN: TSN, streams: [UInt16])
        case response(responseSequence: UInt32, result: UInt32)
        /// Any other request: answered "denied" by the association.
        case unsupported(requestSequence: UInt32?)
    }

    case data(SCTPFragment)
    case initiation(InitFields)
    case initiationAck(InitFields, cookie: [UInt8])
    case sack(SACKFields)
    case heartbeat(info: [UInt8])
    case heartbeatAck(info: [UInt8])
    /// RFC 9260 §3.3.7 (T bit clear: the association always knows the peer's tag).
    case abort(causes: [SCTPErrorCause])
    case shutdown(cumulativeTSN: TSN)
    case shutdownAck
    /// RFC 9260 §3.3.10.
    case error(causes: [SCTPErrorCause])
    case cookieEcho(cookie: [UInt8])
    case cookieAck
    case shutdownComplete
    case forwardTSN(newCumulativeTSN: TSN, streams: [ForwardedStream])
    case reconfig([Reconfig])
    /// RFC 4820 PAD: `length` bytes in all (a multiple of four, at least
    /// four), zeros after the header. It fills a path MTU probe.
    case padding(length: Int)
    /// ECNE (RFC 9260 Appendix A): the lowest TSN of packets that arrived
    /// marked CE since the last CWR, and how many such packets arrived
    /// (draft-stewart-tsvwg-sctpecn §3.2; nil from a peer that sends the
    /// short form).
    case ecnEcho(lowestTSN: TSN, markedPackets: UInt32?)
    /// CWR (RFC 9260 Appendix A): the window was reduced for the ECNE with this TSN.
    case cwr(lowestTSN: TSN)
    /// A chunk type this side does not know, with its type (whose two high
    /// bits say what to do, RFC 9260 §3.2).
    case unknown(type: UInt8)

    public struct ForwardedStream: Sendable, Equatable {
        public var stream: UInt16
        public var ssn: SSN
        public init(stream: UInt16, ssn: SSN) {
            self.stream = stream
            self.ssn = ssn
        }
    }
}

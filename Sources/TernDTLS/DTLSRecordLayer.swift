import TernWire

/// Who protects application data, and the hand-over from OpenSSL's record
/// layer to this module's own, as a state machine.
///
///     openSSL ──takeOver (keys derived)──▶ own
///        │
///        └──takeOver refused (another cipher, a delivery whose sequence
///           number is unknown, no key material)──▶ openSSL for good
///
/// While OpenSSL protects the records, the association reports to this
/// value what OpenSSL wrote (`noteWritten`: the sequence number and explicit
/// nonce of its last epoch-1 record) and what it delivered (`noteDelivered`:
/// the sequence number of each application data record, known because
/// OpenSSL is given one record per call before the hand-over). The hand-over
/// keeps the rules GCM and DTLS depend on:
/// - *Nonces never repeat under a key.* OpenSSL draws its explicit nonces
///   from a counter it starts at a random value; ours start half the
///   counter's range (2^63, `OwnRecordLayer.nonceDistance`) away from the
///   last one OpenSSL wrote, so the few records OpenSSL may still write (a
///   repeated final flight, an alert) can never meet ours.
/// - *Sequence numbers go on* from OpenSSL's last, and stop at 2^48.
/// - *Replays are refused* (RFC 6347 §4.1.2.6): a 64-record window that
///   starts with exactly the application data records OpenSSL delivered
///   counted as seen, and moves only for records that authenticated. Should
///   OpenSSL deliver a record that is not the one it was just given
///   (records it held back while the handshake finished, when application
///   data overtook the Finished), the records stay with OpenSSL, whose
///   window knows it.
/// - *OpenSSL is not needed any more* when the hand-over happens: the
///   association asks for it as soon as a client is connected (nothing it
///   could be asked to resend protects application data), and for a server
///   only once application data from the client shows that the client has
///   the server's final flight, which OpenSSL must be able to resend until
///   then (`peerSentApplicationData`).
struct DTLSRecordLayer {
    /// What OpenSSL did with epoch-1 records before the hand-over.
    struct OpenSSLRecords: Equatable {
        /// The sequence number and explicit nonce of the last epoch-1
        /// record OpenSSL wrote: ours go on from them.
        var lastWritten: LastRecord?
        /// The application data records OpenSSL delivered, by sequence
        /// number: the own record layer's replay window starts as this.
        var delivered = DTLSReplayWindow()
        /// OpenSSL delivered application data that was not from the record
        /// it was just given, so its sequence number is unknown.
        var unattributedDelivery = false
        /// OpenSSL decrypted application data from the peer: for a server,
        /// the sign that the client has its final flight.
        var peerSentApplicationData = false
    }

    struct LastRecord: Equatable {
        var sequence: UInt64
        var explicitNonce: UInt64
    }

    /// Why the records stay with OpenSSL for good.
    enum Refusal: Equatable {
        /// Turned off in the configuration.
        case disabled
        /// OpenSSL delivered a record whose sequence number is unknown; a
        /// replay window without it would let its replay in.
        case unattributedDelivery
        /// No epoch-1 record from OpenSSL to go on from (it writes its
        /// Finished in epoch 1, so this does not happen).
        case noRecordWritten
        /// Not an AES-GCM suite (ChaCha20-Poly1305 stays with OpenSSL), or
        /// the key material could not be had.
        case noKeys
    }

    enum State {
        case openSSL(OpenSSLRecords)
        case own(OwnRecordLayer)
        case stayWithOpenSSL(Refusal)
    }

    private(set) var state: State

    init(enabled: Bool) {
        state = enabled ? .openSSL(OpenSSLRecords()) : .stayWithOpenSSL(.disabled)
    }

    /// The own layer, once it protects application data.
    var own: OwnRecordLayer? {
        if case .own(let layer) = state { return layer }
        return nil
    }

    /// Whether OpenSSL's epoch-1 records are still watched for the hand-over.
    var watchesOpenSSL: Bool {
        if case .openSSL = state { return true }
        return false
    }

    /// Whether application data from the peer came through OpenSSL.
    var peerSentApplicationData: Bool {
        if case .openSSL(let records) = state { return records.peerSentApplicationData }
        return false
    }

    // MARK: Before the hand-over

    /// OpenSSL delivered application data. `sequence` is that of the record
    /// it was given for the read when that was application data of epoch 1
    /// (one record, one delivery), nil when it cannot be known.
    mutating func noteDelivered(sequence: UInt64?) {
        guard case .openSSL(var records) = state else { return }
        records.peerSentApplicationData = true
        if let sequence {
            records.delivered.accept(sequence)
        } else {
            records.unattributedDelivery = true
        }
        state = .openSSL(records)
    }

    /// Notes the sequence number and explicit nonce of each epoch-1 record
    /// OpenSSL wrote to `stream` from `start` on.
    mutating func noteWritten(_ stream: [UInt8], from start: Int) {
        guard case .openSSL(var records) = state else { return }
        var last = records.lastWritten
        stream.withUnsafeBytes { bytes in
            guard start < bytes.count else { return }
            DTLSRecordFraming.forEachRecord(in: UnsafeRawBufferPointer(rebasing: bytes[start...])) { header, record in
                // RFC 5288 §3: the explicit nonce opens the fragment.
                if header.epoch == OwnRecordLayer.epoch,
                   let nonce = UnsafeWireReader(record).peekInteger(ahead: DTLSRecordFraming.headerLength, as: UInt64.self)
                {
                    last = LastRecord(sequence: header.sequence, explicitNonce: nonce)
                }
                return true
            }
        }
        records.lastWritten = last
        state = .openSSL(records)
    }

    // MARK: The hand-over

    /// Takes application data over from OpenSSL, with the keys `keys` gives
    /// (nil: not an AES-GCM suite). The caller decides when it is safe (see
    /// the type's comment); this decides whether it can be done, and
    /// otherwise leaves the records with OpenSSL for good.
    mutating func takeOver(role: DTLSRole, keys: () throws(DTLSError) -> DTLSRecordKeys?) {
        guard case .openSSL(let records) = state else { return }
        guard !records.unattributedDelivery else {
            state = .stayWithOpenSSL(.unattributedDelivery)
            return
        }
        guard let last = records.lastWritten else {
            state = .stayWithOpenSSL(.noRecordWritten)
            return
        }
        do {
            guard var keys = try keys() else {
                state = .stayWithOpenSSL(.noKeys)
                return
            }
            defer { keys.wipe() }
            let peer: DTLSRole = role == .client ? .server : .client
            state = .own(OwnRecordLayer(
                sealer: try keys.cipher(sentBy: role),
                opener: try keys.cipher(sentBy: peer),
                nextSequence: last.sequence + 1,
                nextExplicitNonce: last.explicitNonce &+ OwnRecordLayer.nonceDistance,
                window: records.delivered))
        } catch {
            state = .stayWithOpenSSL(.noKeys)
        }
    }
}

/// The state of application data's record layer once it is ours: a cipher
/// per direction, the next sequence number and explicit nonce to send, and
/// the replay window of what arrives. A class so that the data path updates
/// it in place.
final class OwnRecordLayer {
    /// Application data travels in epoch 1: DTLS 1.2 here never renegotiates.
    static let epoch: UInt16 = 1
    /// How far our first explicit nonce is from OpenSSL's last: half the
    /// 64-bit counter's range, which neither side's counter can cross.
    static let nonceDistance: UInt64 = 1 << 63

    let sealer: DTLSRecordCipher
    let opener: DTLSRecordCipher
    private(set) var nextSequence: UInt64
    private(set) var nextExplicitNonce: UInt64
    private(set) var window: DTLSReplayWindow

    init(sealer: DTLSRecordCipher, opener: DTLSRecordCipher, nextSequence: UInt64, nextExplicitNonce: UInt64, window: DTLSReplayWindow) {
        self.sealer = sealer
        self.opener = opener
        self.nextSequence = nextSequence
        self.nextExplicitNonce = nextExplicitNonce
        self.window = window
    }

    /// What opening one record came to.
    enum Opened: Equatable {
        /// Authenticated: this many bytes of plaintext at the front of the buffer.
        case plaintext(Int)
        /// Seen before, or too old for the window (RFC 6347 §4.1.2.6).
        case replay
        /// Did not authenticate, or is malformed (RFC 6347 §4.1.2.7).
        case forged
    }

    /// Checks and decrypts one application data record with this sequence
    /// number into `plaintext`; the window moves only for a record that
    /// authenticated.
    func open(record: UnsafeRawBufferPointer, sequence: UInt64, into plaintext: UnsafeMutableRawBufferPointer) -> Opened {
        guard window.isFresh(sequence) else { return .replay }
        guard let count = opener.open(record: record, into: plaintext) else { return .forged }
        window.accept(sequence)
        return .plaintext(count)
    }

    /// Seals one record with the next sequence number and explicit nonce,
    /// appending it to `output`; both move on only when it was sealed.
    func seal(type: UInt8, _ bytes: UnsafeRawBufferPointer, appendingTo output: inout [UInt8]) throws(DTLSError) {
        let sequence = nextSequence, nonce = nextExplicitNonce
        try sealer.seal(
            type: type, epoch: Self.epoch, sequence: sequence, explicitNonce: nonce,
            plaintext: bytes, appendingTo: &output)
        nextSequence = sequence + 1
        nextExplicitNonce = nonce &+ 1
    }
}

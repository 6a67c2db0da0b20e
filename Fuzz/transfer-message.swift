// libFuzzer target for TernTransfer's message codec (docs/protocol.md §11).
// Built without SwiftPM, with the module's sources compiled into the same
// module (they need OpenSSL's SHA-256):
//
//   (scripts/fuzz.sh builds TernCollections, TernCrypto and TernWire as
//   libraries first; see its transfer-message line)
//   /tmp/transfer-message-fuzz -max_total_time=60 Fuzz/seeds/transfer-message
//
// Properties checked, besides "never traps":
// - decoding fails only with `protocolViolation` (a hostile sender's bytes
//   are a protocol matter, never an I/O or integrity one);
// - a chunk decodes to exactly its input: header fields and data slice;
// - a message that decodes re-encodes, the re-encoding decodes, and
//   encoding that again gives the same bytes;
// - the limits hold on what decodes: chunk sizes in range, counts of
//   entries, claims and starts, failure reasons, non-negative indexes.
#if canImport(TernTransfer)
import TernTransfer
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let message: TransferMessage
    do {
        message = try TransferMessage(decoding: bytes)
    } catch {
        guard case .protocolViolation = error else { preconditionFailure("decoding threw \(error), not a protocol violation") }
        return 0
    }
    checkLimits(message, input: bytes)

    let encoded = message.encoded()
    if case .chunk = message {
        precondition(encoded == bytes, "a chunk did not re-encode to its input")
    }
    if case .files = message {
        precondition(encoded == bytes, "a files message did not re-encode to its input")
    }
    let again: TransferMessage
    do {
        again = try TransferMessage(decoding: encoded)
    } catch {
        preconditionFailure("the re-encoding of a decoded message does not decode: \(error)")
    }
    precondition(again.encoded() == encoded, "encoding is not stable")
    return 0
}

private func checkLimits(_ message: TransferMessage, input: [UInt8]) {
    switch message {
    case .chunk(let chunk):
        precondition(input.count > TransferMessage.chunkHeaderSize, "a chunk without data decoded")
        precondition(chunk.data.count == input.count - TransferMessage.chunkHeaderSize, "chunk data is not the rest of the input")
        precondition(chunk.data.count <= TransferMessage.maxChunkSize, "a chunk over the limit decoded")
        precondition(chunk.data.startIndex == TransferMessage.chunkHeaderSize, "chunk data does not start after the header")
        precondition(chunk.hash.bytes == Array(input[13..<45]), "the chunk hash is not the header's")
        precondition(chunk.index >= 0 && chunk.index <= Int(UInt32.max), "a chunk index outside 32 bits")
    case .manifest(let chunkSize, let entries, _):
        precondition((TransferMessage.minChunkSize...TransferMessage.maxChunkSize).contains(chunkSize), "chunk size out of range")
        precondition(entries.count <= TransferMessage.maxItemsPerMessage, "too many entries")
    case .ask(let asks, let skip, _):
        precondition(asks.count + skip.count <= TransferMessage.maxItemsPerMessage, "too many asks")
        precondition(skip.allSatisfy { $0 >= 0 }, "a negative skip decoded")
        precondition(asks.allSatisfy { $0.index >= 0 }, "a negative ask index decoded")
    case .hashes(let chains, _):
        precondition(chains.count <= TransferMessage.maxItemsPerMessage, "too many chains")
        precondition(chains.allSatisfy { $0.index >= 0 && $0.chain.bytes.count == Digest.byteCount }, "a bad chain decoded")
    case .need(let starts, _):
        precondition(starts.count <= TransferMessage.maxItemsPerMessage, "too many starts")
        precondition(starts.allSatisfy { $0.index >= 0 }, "a negative start index decoded")
    case .end(let index, _, let root):
        precondition(index >= 0 && root.bytes.count == Digest.byteCount, "a bad end decoded")
    case .verified(let index):
        precondition(index >= 0, "a negative verified index decoded")
    case .done:
        break
    case .finished(_, _, let hash):
        precondition(hash.bytes.count == Digest.byteCount, "a bad finished hash decoded")
    case .failure(_, let text):
        precondition(text.utf8.count <= TransferMessage.maxFailureMessageBytes, "a failure reason over the limit decoded")
    case .files(let files):
        precondition(!files.isEmpty, "a files message without a record decoded")
        precondition(input.count <= TransferMessage.maxMessageSize, "a files message over the limit decoded")
        var offset = 1
        for file in files {
            precondition(file.index >= 0 && file.index <= Int(UInt32.max), "a record index outside 32 bits")
            precondition(file.data.count <= TransferMessage.maxChunkSize, "a record over the largest chunk decoded")
            offset += TransferMessage.wholeFileHeaderSize
            precondition(file.data.startIndex == offset, "record data does not follow its header")
            offset += file.data.count
        }
        precondition(offset == input.count, "records do not cover the whole input")
    }
}

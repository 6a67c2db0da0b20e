import Foundation

/// Whole reads and writes on a descriptor, resumed after interrupts and
/// short counts: positional (`pread`/`pwrite`) at an offset, or at the
/// descriptor's own position (`read`/`write`: a pipe, a terminal) without
/// one. The one copy of these loops, for partial files, sources, standard
/// input and a stream written to standard output.
enum DescriptorIO {
    /// Why a read or write stopped: `reason` completes "cannot read X: …".
    struct Failure: Error {
        var reason: String

        static func errno(_ code: Int32) -> Failure {
            Failure(reason: String(cString: strerror(code)))
        }
    }

    /// Writes all of `bytes`, at `offset` when given.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: UInt64? = nil) throws(Failure) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        try checkRange(offset, count: bytes.count)
        var done = 0
        while done < bytes.count {
            let count: Int
            if let offset {
                count = pwrite(fd, base + done, bytes.count - done, off_t(offset + UInt64(done)))
            } else {
                count = write(fd, base + done, bytes.count - done)
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw .errno(errno)
            }
            if count == 0 { throw Failure(reason: "the file system took no bytes") }
            done += count
        }
    }

    /// Reads until `buffer` is full or the input ends, at `offset` when
    /// given; returns how many bytes were read.
    static func readFully(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64? = nil) throws(Failure) -> Int {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return 0 }
        try checkRange(offset, count: buffer.count)
        var done = 0
        while done < buffer.count {
            let count: Int
            if let offset {
                count = pread(fd, base + done, buffer.count - done, off_t(offset + UInt64(done)))
            } else {
                count = read(fd, base + done, buffer.count - done)
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw .errno(errno)
            }
            if count == 0 { break }
            done += count
        }
        return done
    }

    /// An offset and length a file can hold (below 2^63: `off_t`).
    private static func checkRange(_ offset: UInt64?, count: Int) throws(Failure) {
        guard let offset else { return }
        let (end, overflow) = offset.addingReportingOverflow(UInt64(count))
        guard !overflow, end <= UInt64(Int64.max) else {
            throw Failure(reason: "offset \(offset) is beyond what a file can hold")
        }
    }
}

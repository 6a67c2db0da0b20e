/// Bytes from a hex string; spaces and newlines are ignored. For literals in
/// tests only: a bad digit is a bug in the test and fails loudly.
public func bytes(_ hex: String) -> [UInt8] {
    let digits = hex.filter { !$0.isWhitespace }
    precondition(digits.count % 2 == 0, "odd hex literal")
    var result: [UInt8] = []
    var index = digits.startIndex
    while index < digits.endIndex {
        let next = digits.index(index, offsetBy: 2)
        guard let byte = UInt8(digits[index..<next], radix: 16) else { preconditionFailure("bad hex literal") }
        result.append(byte)
        index = next
    }
    return result
}

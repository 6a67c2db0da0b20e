import COpenSSL
import TernSTUN
import TernTestSupport

/// What coturn computes for its shared-secret REST scheme
/// (draft-uberti-behave-turn-rest-00 as coturn implements it): the username
/// is "expiry:user" and the password base64(HMAC-SHA1(secret, username)).
/// Written here independently of TernRelay's minter, straight on OpenSSL.
enum TestCrypto {
    static func restCredentials(secret: String, user: String, expiry: Int) -> (username: String, password: String) {
        let username = "\(expiry):\(user)"
        return (username, base64(hmacSHA1(key: Array(secret.utf8), message: Array(username.utf8))))
    }

    static func hmacSHA1(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let ok = key.withUnsafeBytes { keyBytes in
            message.withUnsafeBufferPointer { messageBytes in
                out.withUnsafeMutableBufferPointer { outBytes in
                    HMAC(EVP_sha1(), keyBytes.baseAddress, Int32(key.count), messageBytes.baseAddress, message.count,
                         outBytes.baseAddress, &length) != nil
                }
            }
        }
        precondition(ok && length == 20, "HMAC-SHA1 failed in a test")
        return Array(out.prefix(20))
    }

    /// MD5 through EVP, so that the fake server does not lean on
    /// `STUNKey.longTerm`, the function under test on the client side.
    static func md5(_ input: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 16)
        var length: UInt32 = 0
        let ok = input.withUnsafeBytes { data in
            digest.withUnsafeMutableBufferPointer { out in
                EVP_Digest(data.baseAddress, data.count, out.baseAddress, &length, EVP_md5(), nil) == 1
            }
        }
        precondition(ok && length == 16, "MD5 failed in a test")
        return digest
    }

    /// RFC 4648 §4 base64 with padding.
    static func base64(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let remaining = bytes.count - index
            let b0 = UInt32(bytes[index])
            let b1 = remaining > 1 ? UInt32(bytes[index + 1]) : 0
            let b2 = remaining > 2 ? UInt32(bytes[index + 2]) : 0
            let group = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(group >> 18 & 63)])
            out.append(alphabet[Int(group >> 12 & 63)])
            out.append(remaining > 1 ? alphabet[Int(group >> 6 & 63)] : UInt8(ascii: "="))
            out.append(remaining > 2 ? alphabet[Int(group & 63)] : UInt8(ascii: "="))
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}

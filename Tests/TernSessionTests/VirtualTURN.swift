import TernSTUN
import TernTURN

/// A TURN server on `VirtualConnectivity`'s network, reachable from any
/// address a side has (as a public server is from any uplink), for the
/// restart tests: allocations are keyed by the client's 5-tuple (RFC 8656
/// §2, here its address and port, the server's being one), so a client
/// whose address changed is a new client to it. No authentication: an
/// Allocate gets its success response at once. CreatePermission and
/// Refresh from a 5-tuple without an allocation get 437 (RFC 8656 §18);
/// ChannelBind gets 403, so data goes in Send and Data indications
/// (RFC 8656 §10), which is all the tests need.
struct VirtualTURN {
    static let server = STUNAddress.ipv4(10, 9, 0, 1, port: 3478)

    struct Allocation {
        var relayed: STUNAddress
        var permissions: Set<[UInt8]> = []
    }

    /// By the client's transport address.
    private(set) var allocations: [STUNAddress: Allocation] = [:]
    /// Allocations made so far, lost ones included.
    private(set) var allocated = 0
    /// Requests answered 437 (no allocation for their 5-tuple).
    private(set) var mismatches = 0

    /// Whether datagrams to `address` are this server's.
    func serves(_ address: STUNAddress) -> Bool {
        address == Self.server || allocations.values.contains { $0.relayed == address }
    }

    /// Forgets every allocation, as a server that restarted.
    mutating func loseAllocations() { allocations.removeAll() }

    /// A datagram from `source` to `destination` (the server, or a relayed
    /// address); returns what the server sends, from where, to where.
    mutating func receive(_ bytes: [UInt8], from source: STUNAddress, to destination: STUNAddress)
        -> [(bytes: [UInt8], from: STUNAddress, to: STUNAddress)] {
        if destination != Self.server {
            // A peer's datagram to a relayed address: a Data indication to
            // the client if the peer's IP has a permission (RFC 8656 §10.3).
            guard let (client, allocation) = allocations.first(where: { $0.value.relayed == destination }),
                  allocation.permissions.contains(source.ipBytes),
                  let bytes = try? STUNMessage(.indication, .data, transactionID: .random(),
                                               attributes: [.xorPeerAddress(source), .data(bytes)]).encode()
            else { return [] }
            return [(bytes, Self.server, client)]
        }
        guard let message = try? STUNMessage.decode(bytes[...]) else { return [] }
        if message.messageClass == .indication {
            // RFC 8656 §10.2: a Send indication is relayed from the relayed address.
            guard message.method == .send, let allocation = allocations[source],
                  let peer = message.xorPeerAddresses.first, let data = message.data,
                  allocation.permissions.contains(peer.ipBytes)
            else { return [] }
            return [(data, allocation.relayed, peer)]
        }
        guard message.messageClass == .request else { return [] }
        func answer(_ attributes: [STUNAttribute]) -> [(bytes: [UInt8], from: STUNAddress, to: STUNAddress)] {
            guard let bytes = try? STUNMessage(.successResponse, message.method, transactionID: message.transactionID, attributes: attributes).encode()
            else { return [] }
            return [(bytes, Self.server, source)]
        }
        func refuse(_ code: Int, _ reason: String) -> [(bytes: [UInt8], from: STUNAddress, to: STUNAddress)] {
            guard let bytes = try? STUNMessage(.errorResponse, message.method, transactionID: message.transactionID,
                                               attributes: [.errorCode(STUNErrorCode(code: code, reason: reason))]).encode()
            else { return [] }
            return [(bytes, Self.server, source)]
        }
        switch message.method {
        case .allocate:
            guard allocations[source] == nil else { return refuse(437, "Allocation Mismatch") }
            allocated += 1
            let relayed = STUNAddress.ipv4(10, 9, 0, 1, port: UInt16(50_000 + allocated))
            allocations[source] = Allocation(relayed: relayed)
            return answer([.xorRelayedAddress(relayed), .xorMappedAddress(source), .lifetime(600)])
        case .refresh:
            guard allocations[source] != nil else {
                mismatches += 1
                return refuse(437, "Allocation Mismatch")
            }
            if message.lifetime == 0 { allocations[source] = nil }
            return answer([.lifetime(message.lifetime ?? 600)])
        case .createPermission:
            guard allocations[source] != nil else {
                mismatches += 1
                return refuse(437, "Allocation Mismatch")
            }
            for peer in message.xorPeerAddresses { allocations[source]?.permissions.insert(peer.ipBytes) }
            return answer([])
        default:
            return refuse(403, "Forbidden")
        }
    }
}

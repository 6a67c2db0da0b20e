import Testing
import NIOCore
@testable import TernSession
import TernICE
import TernSTUN

@Suite struct LocalAddressesTests {
    static let loopback4 = LocalAddresses.Address(interface: "lo", ip: [127, 0, 0, 1])
    static let loopback6 = LocalAddresses.Address(interface: "lo", ip: [UInt8](repeating: 0, count: 15) + [1])
    static let lan = LocalAddresses.Address(interface: "eth0", ip: [10, 77, 1, 2])
    static let linkLocal4 = LocalAddresses.Address(interface: "eth0", ip: [169, 254, 3, 4])
    static let linkLocal6 = LocalAddresses.Address(interface: "eth0", ip: [0xfe, 0x80] + [UInt8](repeating: 0, count: 13) + [7])
    static let global6 = LocalAddresses.Address(interface: "eth0", ip: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [9])

    @Test func loopbackAndLinkLocalGoWhenThereIsARealAddress() {
        let chosen = LocalAddresses.select([Self.loopback4, Self.loopback6, Self.linkLocal4, Self.lan, Self.linkLocal6, Self.global6, Self.lan])
        #expect(chosen == [Self.lan, Self.global6])
    }

    @Test func loopbackStaysWhenItIsAllThereIs() {
        #expect(LocalAddresses.select([Self.loopback4, Self.linkLocal6]) == [Self.loopback4])
    }

    @Test func thisMachineHasUsableAddresses() throws {
        let addresses = try LocalAddresses.usable()
        #expect(!addresses.isEmpty)
        #expect(addresses.allSatisfy { !LocalAddresses.isLinkLocal($0.ip) })
        if addresses.contains(where: { !LocalAddresses.isLoopback($0.ip) }) {
            #expect(addresses.allSatisfy { !LocalAddresses.isLoopback($0.ip) })
        }
    }
}

@Suite struct PathDatagramSizeTests {
    static func path(local: STUNAddress, remote: STUNAddress, type: ICECandidateType = .host, routeMTU: Int? = nil) -> ConnectedPath {
        let pair = ICECandidatePair(
            local: ICECandidate(foundation: "1", priority: 1, address: local, type: type), localBase: local,
            remote: ICECandidate(foundation: "2", priority: 1, address: remote, type: .host), priority: 1)
        var path = ConnectedPath(pair: pair, roundTrip: nil, relayTransport: nil)
        path.routeMTU = routeMTU
        return path
    }

    @Test func anEthernetPathLeavesRoomForTheIPAndUDPHeaders() {
        #expect(Self.path(local: .ipv4(10, 0, 0, 1, port: 1), remote: .ipv4(10, 0, 0, 2, port: 2)).maximumDatagramSize == 1472)
        let v6 = STUNAddress(ipBytes: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1], port: 1)
        let w6 = STUNAddress(ipBytes: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [2], port: 2)
        if let v6, let w6 { #expect(Self.path(local: v6, remote: w6).maximumDatagramSize == 1452) } else { Issue.record("no IPv6 address") }
    }

    @Test func aSmallerRouteMTULowersItAndALargerOneDoesNotRaiseIt() {
        let a = STUNAddress.ipv4(10, 0, 0, 1, port: 1), b = STUNAddress.ipv4(10, 0, 0, 2, port: 2)
        #expect(Self.path(local: a, remote: b, routeMTU: 1420).maximumDatagramSize == 1392)  // a WireGuard tunnel
        #expect(Self.path(local: a, remote: b, routeMTU: 65_536).maximumDatagramSize == 1472)  // loopback
    }

    @Test func onlyARemotePortChangeIsTheSameNetworkPath() {
        let a = STUNAddress.ipv4(10, 0, 0, 1, port: 1), b = STUNAddress.ipv4(10, 0, 0, 2, port: 2)
        let path = Self.path(local: a, remote: b)
        #expect(Self.path(local: a, remote: .ipv4(10, 0, 0, 2, port: 9)).isSameNetworkPath(as: path), "a NAT rebinding")
        #expect(path.isSameNetworkPath(as: path), "the same pair again")
        #expect(!Self.path(local: a, remote: .ipv4(10, 0, 0, 3, port: 2)).isSameNetworkPath(as: path), "another remote address")
        #expect(!Self.path(local: .ipv4(10, 0, 0, 1, port: 7), remote: b).isSameNetworkPath(as: path), "another local base (a relayed one, say)")
    }

    @Test func aRelayedPathLeavesRoomForTURNFraming() {
        let a = STUNAddress.ipv4(10, 0, 0, 1, port: 1), b = STUNAddress.ipv4(10, 0, 0, 2, port: 2)
        #expect(Self.path(local: a, remote: b, type: .relayed).maximumDatagramSize == 1424)
    }

    @Test func theRouteMTUComesFromTheKernel() throws {
        // Loopback's route carries 64 KiB packets on Linux (the kernel says
        // 65535); this host's own addresses are reached over it too,
        // whatever interface has them (this machine's eth0 has 1400).
        let loopback = try SocketAddress(ipAddress: "127.0.0.1", port: 9)
        let overLoopback = try #require(RouteMTU.towards(loopback))
        #expect(overLoopback > 60_000)
        for address in try LocalAddresses.usable() where address.ip.count == 4 {
            let own = try SocketAddress(ipAddress: LocalAddresses.text(address.ip), port: 9)
            #expect(RouteMTU.towards(own) == overLoopback, "\(address)")
        }
    }
}

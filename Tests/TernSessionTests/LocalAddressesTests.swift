import Testing
@testable import TernSession

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

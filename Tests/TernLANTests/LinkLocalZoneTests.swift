import Testing
@testable import TernLAN

/// A typed link-local IPv6 address and its zone (`--from fe80::1%eth0`).
@Suite struct LinkLocalZoneTests {
    @Test func anAddressThatIsNotLinkLocalIsKeptAsGiven() throws {
        for host in ["192.168.1.20", "fd74:6e::11", "2001:db8::1", "::1"] {
            #expect(try LinkLocalZone.resolve(host, interfaces: ["eth0", "wlan0"]) == host)
        }
    }

    @Test func aZoneNamingAnInterfaceWithALinkLocalAddressIsKept() throws {
        #expect(try LinkLocalZone.resolve("fe80::1%wlan0", interfaces: ["eth0", "wlan0"]) == "fe80::1%wlan0")
    }

    @Test func aZoneNamingNoSuchInterfaceIsRefusedWithTheOnesThereAre() {
        #expect(throws: LinkLocalZone.Problem.unknownInterface("eth9", known: ["eth0"])) {
            try LinkLocalZone.resolve("fe80::1%eth9", interfaces: ["eth0"])
        }
    }

    @Test func withoutAZoneTheOnlyInterfaceIsTaken() throws {
        #expect(try LinkLocalZone.resolve("fe80::a839:d7ff:fee5:6a45", interfaces: ["eth0"]) == "fe80::a839:d7ff:fee5:6a45%eth0")
        #expect(try LinkLocalZone.resolve("febf::1", interfaces: ["eth0"]) == "febf::1%eth0")
    }

    @Test func withoutAZoneSeveralInterfacesOrNoneAreRefused() {
        #expect(throws: LinkLocalZone.Problem.ambiguous(["eth0", "wlan0"])) {
            try LinkLocalZone.resolve("fe80::1", interfaces: ["eth0", "wlan0"])
        }
        #expect(throws: LinkLocalZone.Problem.noInterface) { try LinkLocalZone.resolve("fe80::1", interfaces: []) }
    }

    @Test func linkLocalIsFe80Slash10Only() {
        #expect(LinkLocalZone.isLinkLocal("fe80::1"))
        #expect(LinkLocalZone.isLinkLocal("febf:ffff::1"))
        #expect(!LinkLocalZone.isLinkLocal("fec0::1"))
        #expect(!LinkLocalZone.isLinkLocal("ff02::74:6e"))
        #expect(!LinkLocalZone.isLinkLocal("fd74:6e::11"))
        #expect(!LinkLocalZone.isLinkLocal("fe80::1%eth0"))
        #expect(!LinkLocalZone.isLinkLocal("10.0.0.1"))
    }
}

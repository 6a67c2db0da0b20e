import Testing
@testable import TernTransfer

@Suite struct TransferErrorTextTests {
    @Test func theFreeSpaceErrorShowsHumanSizes() {
        let error = TransferError.noSpace(needed: 3 << 30, available: 512 << 20)
        #expect(error.message == "not enough free space: the offer needs 3.0 GiB, the target has 512.0 MiB free")
    }
}

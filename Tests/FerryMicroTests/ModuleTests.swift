import FerryMicro
import Testing

@Suite("FerryMicro module")
struct ModuleTests {
    @Test("the module re-exports Ferry")
    func reexports() {
        #expect(FerryStatus.ok.isOK)
    }
}

import XCTest
import Foundation

/// A test class whose fixture is made once, in `class func setUp`: an error
/// making it fails every test of the class with that error, instead of the
/// tests running on a half-made fixture (failing confusingly, or passing
/// vacuously). `class func setUp` cannot throw, so the error is kept here
/// and reported by each test in place of running it. A fixture that throws
/// XCTSkip (a missing tool outside `make test`) skips every test instead.
class FixtureTestCase: XCTestCase {
    /// The error that made each class's fixture fail, by class.
    nonisolated(unsafe) private static var errors: [ObjectIdentifier: Error] = [:]

    /// Makes the fixture: call it from `override class func setUp()`.
    class func prepare(_ body: () throws -> Void) {
        do { try body() } catch { errors[ObjectIdentifier(self)] = error }
    }

    private var fixtureError: Error? { Self.errors[ObjectIdentifier(type(of: self))] }

    override func invokeTest() {
        if let error = fixtureError, !(error is XCTSkip) {
            XCTFail("the fixture of \(type(of: self)) failed: \(error)")
            return
        }
        super.invokeTest()
    }

    override func setUpWithError() throws {
        try super.setUpWithError()
        if let skip = fixtureError as? XCTSkip { throw skip }
    }
}

/// A failure the test reports by throwing: a missing tool under `make test`,
/// a command of a fixture that exited non-zero, a wait that ran out.
struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// What a test needs from the machine (a tool, the herd binary, a data file
/// in ../shared): where it is missing the test is skipped, saying so; but
/// under `make test` (HERD_TEST_STRICT=1), which installs and builds all of
/// it, the test fails — a skip there would hide that the test never ran.
/// `what` names the thing ("strace", "/usr/bin/chromium").
func require(_ condition: Bool, _ what: String, _ remedy: String = "make test installs it",
             file: StaticString = #file, line: UInt = #line) throws {
    if condition { return }
    if ProcessInfo.processInfo.environment["HERD_TEST_STRICT"] == "1" {
        throw TestFailure("\(what) is missing; \(remedy)")
    }
    throw XCTSkip("\(what) is missing (\(remedy))", file: file, line: line)
}

import Foundation
import XCTest
@testable import Utp

/// Runs a Rust `utp serve calc` (UTP_BIN, default ../../target/debug/utp) and talks to it.
final class UtpLinkTests: XCTestCase {
    private var server: Process?
    private var url = ""

    override func setUpWithError() throws {
        let bin = ProcessInfo.processInfo.environment["UTP_BIN"] ?? "../../target/debug/utp"
        url = "unix:///tmp/utp-swift-\(getpid())-\(Int.random(in: 0..<1_000_000)).sock"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: bin)
        process.arguments = ["serve", "calc", "--on", url]
        try process.run()
        server = process
        for _ in 0..<200 {
            if (try? UtpLink(connect: url)) != nil { return }
            usleep(20_000)
        }
        XCTFail("server did not start at \(url)")
    }

    override func tearDown() {
        server?.terminate()  // SIGTERM: the server removes its socket
        server?.waitUntilExit()
    }

    func testCalculatorAnswers() throws {
        let link = try UtpLink(connect: url)
        XCTAssertEqual(try link.calc("ADD", 10, 20), 30)
        XCTAssertEqual(try link.calc("MUL", -6, 7), -42)
    }

    func testCalculatorErrorsAreSwiftErrors() throws {
        let link = try UtpLink(connect: url)
        XCTAssertThrowsError(try link.calc("DIV", 1, 0)) { error in
            let utp = error as! UtpError
            XCTAssertTrue(utp.isCalculatorError)
            XCTAssertEqual(utp.message, "Division by zero")
        }
    }

    func testRawFramesRoundTrip() throws {
        let link = try UtpLink(connect: url)
        try link.send(type: 0x10, payload: Array("SUB 50 8".utf8))
        let reply = try link.receive()
        XCTAssertEqual(reply.messageType, 0x11)
        XCTAssertEqual(String(decoding: reply.payload, as: UTF8.self), "OK 42")
    }

    func testMissingServerIsAClearError() {
        XCTAssertThrowsError(try UtpLink(connect: "unix:///tmp/utp-swift-nobody.sock")) { error in
            XCTAssertEqual((error as! UtpError).name, "UTP_ERR_NOT_FOUND")
        }
    }
}

import CUtp

/// An error from utp: the C status code, its name and the library's message.
public struct UtpError: Error, CustomStringConvertible, Equatable {
    /// The raw status code (negative), as in utp.h.
    public let code: Int32
    /// The status name, such as "UTP_ERR_TIMEOUT".
    public let name: String
    /// What went wrong, in words.
    public let message: String

    /// True when the calculator answered `ERR ...` (division by zero, overflow, ...).
    public var isCalculatorError: Bool { code == UTP_ERR_CALC.rawValue }
    /// True when the call ran out of time.
    public var isTimeout: Bool { code == UTP_ERR_TIMEOUT.rawValue }
    /// True when the peer closed the link or died.
    public var isPeerGone: Bool { code == UTP_ERR_PEER_GONE.rawValue }

    public var description: String { "\(name): \(message)" }

    /// Captures the thread's last error right after a failed call.
    init(status: UtpStatus) {
        code = status.rawValue
        name = String(cString: utp_status_name(status.rawValue))
        message = String(cString: utp_last_error())
    }
}

/// Throws a `UtpError` unless `status` is `UTP_OK`.
@inline(__always)
func check(_ status: UtpStatus) throws {
    if status != UTP_OK {
        throw UtpError(status: status)
    }
}

import CUtp

/// A received frame, copied out of utp: no pointer into utp's memory escapes.
public struct UtpFrame: Equatable {
    /// Message type (0x10 REQUEST, 0x11 RESPONSE, ...).
    public let messageType: UInt8
    /// Flag bits (bit 0: checksum verified).
    public let flags: UInt16
    /// The sender's sequence number.
    public let sequence: UInt64
    /// Microseconds since the Unix epoch when the sender built the frame.
    public let timestampUs: UInt64
    /// The payload bytes.
    public let payload: [UInt8]
}

/// A channel to one utp peer, over any mechanism utp knows (shm://, unix://, tcp://, ...).
///
/// ```swift
/// let link = try UtpLink(connect: "shm://calc")
/// let sum = try link.calc("ADD", 10, 20)   // 30
/// ```
///
/// Not thread-safe: use a link from one thread at a time. Closed on deinit.
public final class UtpLink {
    private var handle: OpaquePointer?

    /// Connects to `url`.
    public init(connect url: String) throws {
        var out: OpaquePointer?
        try check(utp_connect(url, &out))
        handle = out
    }

    deinit { utp_channel_close(handle) }

    /// Closes the link now; later calls throw UTP_ERR_INVALID_ARGUMENT.
    public func close() {
        utp_channel_close(handle)
        handle = nil
    }

    /// Sends one frame. `timeoutMs` < 0 waits forever.
    public func send(type messageType: UInt8, payload: [UInt8], checksum: Bool = true, timeoutMs: Int32 = 5000) throws {
        let flags: UInt16 = checksum ? 1 : 0
        try payload.withUnsafeBufferPointer { bytes in
            try check(utp_send(handle, messageType, flags, bytes.baseAddress, bytes.count, timeoutMs))
        }
    }

    /// Receives the next frame. `timeoutMs` < 0 waits forever.
    public func receive(timeoutMs: Int32 = 5000) throws -> UtpFrame {
        var info = UtpFrameInfo()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let status = buffer.withUnsafeMutableBufferPointer { bytes in
                utp_recv(handle, &info, bytes.baseAddress, bytes.count, timeoutMs)
            }
            if status == UTP_ERR_BUFFER_TOO_SMALL {
                // The frame is kept by utp; grow and ask again.
                buffer = [UInt8](repeating: 0, count: Int(info.payload_length))
                continue
            }
            try check(status)
            return UtpFrame(
                messageType: info.message_type,
                flags: info.flags,
                sequence: info.sequence,
                timestampUs: info.timestamp_us,
                payload: Array(buffer.prefix(Int(info.payload_length)))
            )
        }
    }

    /// Asks the calculator service for `op a b` ("ADD", "SUB", "MUL", "DIV").
    /// A calculator `ERR` throws a `UtpError` whose `isCalculatorError` is true.
    public func calc(_ op: String, _ a: Int64, _ b: Int64, timeoutMs: Int32 = 5000) throws -> Int64 {
        var result: Int64 = 0
        try check(utp_calc_call(handle, op, a, b, &result, timeoutMs))
        return result
    }
}

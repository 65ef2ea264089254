import Foundation
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes

// Slow or many clients must not starve `herd serve`. Three limits:
//
// - --read-timeout: a request head must arrive whole within it, counted
//   from the connection's start (which covers a TLS handshake too) or, on
//   a keep-alive connection, from the first byte of the next request. An
//   idle timeout alone does not stop slowloris: a client that trickles one
//   header byte a second is never idle, and holds its connection for ever.
// - --idle-timeout: a keep-alive connection with no request under way for
//   that long is closed.
// - --max-connections: at the cap the server stops accepting; new
//   connections wait in the kernel's listen backlog and are accepted as
//   others close. Connections that send nothing are closed at the read
//   timeout, so a full cap frees up within one read timeout.
//
// The deadlines need two views of a connection: its bytes (a request's
// first byte), seen by `ConnectionDeadlines` just after TLS, and its
// decoded HTTP parts (a whole head, a response's end), seen by
// `RequestProgressWatcher` just after the HTTP decoder. The watcher tells
// the deadlines handler with an outbound user event, which travels from
// the watcher towards the socket and so passes it.

/// Counts for /metrics (and the log line at the cap).
final class ConnectionStats: @unchecked Sendable {
    private let lock = NSLock()
    private var open = 0
    private var pauses = 0
    private var readTimeouts = 0
    private var idleTimeouts = 0
    private var lastCapLog: Date?
    private var pausesAtLastLog = 0

    struct Snapshot { var open, acceptPauses, readTimeouts, idleTimeouts: Int }

    var snapshot: Snapshot {
        lock.lock(); defer { lock.unlock() }
        return Snapshot(open: open, acceptPauses: pauses, readTimeouts: readTimeouts, idleTimeouts: idleTimeouts)
    }

    func setOpen(_ n: Int) { lock.lock(); open = n; lock.unlock() }

    func timedOut(idle: Bool) {
        lock.lock()
        if idle { idleTimeouts += 1 } else { readTimeouts += 1 }
        lock.unlock()
    }

    /// Accepting paused at the cap. Returns the line to log: the first of a
    /// burst, then at most one every 10 s (a flood must not flood the log too).
    func pausedAtCap(limit: Int, now: Date = Date()) -> String? {
        lock.lock(); defer { lock.unlock() }
        pauses += 1
        if let last = lastCapLog, now.timeIntervalSince(last) < 10 { return nil }
        let since = pauses - pausesAtLastLog
        lastCapLog = now
        pausesAtLastLog = pauses
        return "herd serve: \(limit) connections open (--max-connections): new connections wait in the backlog until others close"
            + (since > 1 ? " (\(since) pauses since the last notice)" : "")
    }
}

/// Hummingbird's hook on the listening socket: asked before each accept.
struct ConnectionCap: AvailableConnectionsDelegate {
    let limit: Int
    let stats: ConnectionStats
    private var count = 0

    init(limit: Int, stats: ConnectionStats) { self.limit = limit; self.stats = stats }

    mutating func connectionOpened() { count += 1; stats.setOpen(count) }
    mutating func connectionClosed() { count -= 1; stats.setOpen(count) }

    func isAcceptingNewConnections() -> Bool {
        if count < limit { return true }
        if let line = stats.pausedAtCap(limit: limit) {
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        return false
    }
}

/// The read and idle deadlines, shared by every connection.
struct ConnectionDeadlineSettings: Sendable {
    var readTimeout: TimeAmount
    var idleTimeout: TimeAmount
    var stats: ConnectionStats

    init(readTimeout: Double, idleTimeout: Double, stats: ConnectionStats) {
        self.readTimeout = .nanoseconds(Int64(readTimeout * 1e9))
        self.idleTimeout = .nanoseconds(Int64(idleTimeout * 1e9))
        self.stats = stats
    }
}

/// What `RequestProgressWatcher` tells `ConnectionDeadlines`.
enum RequestProgress: Sendable {
    case headReceived
    case responseEnded
}

/// Sees the connection's bytes (after TLS, before HTTP decoding) and closes
/// it when a deadline passes. Every path here only moves a state and a
/// timer: nothing a client sends can make it throw or trap.
final class ConnectionDeadlines: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Phase: Equatable {
        /// Waiting for a whole request head; `started`: some bytes of it came.
        case awaitingHead(started: Bool)
        /// Heads received whose responses have not ended (pipelining: more than one).
        case busy(Int)
        /// Between requests on a keep-alive connection.
        case idle
    }

    private let settings: ConnectionDeadlineSettings
    private(set) var phase = Phase.awaitingHead(started: false)
    private var timer: Scheduled<Void>?
    /// Bumped with every new timer, so that a timer already running can tell it was replaced.
    private var generation = 0

    init(_ settings: ConnectionDeadlineSettings) { self.settings = settings }

    func handlerAdded(context: ChannelHandlerContext) {
        // From the accept: the TLS handshake and the first head share one deadline.
        arm(context, after: settings.readTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) { disarm() }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch phase {
        case .idle:
            // The next request begins: from here its head has the read timeout.
            phase = .awaitingHead(started: true)
            arm(context, after: settings.readTimeout)
        case .awaitingHead(started: false):
            phase = .awaitingHead(started: true)
        case .awaitingHead(started: true), .busy:
            break
        }
        context.fireChannelRead(data)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let progress = event as? RequestProgress else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        promise?.succeed(())
        switch (progress, phase) {
        case (.headReceived, .busy(let n)):
            phase = .busy(n + 1)
        case (.headReceived, _):
            // The head is whole; the request is the application's now (its body is bounded by --max-body-bytes).
            phase = .busy(1)
            disarm()
        case (.responseEnded, .busy(let n)) where n > 1:
            phase = .busy(n - 1)
        case (.responseEnded, .busy):
            phase = .idle
            arm(context, after: settings.idleTimeout)
        case (.responseEnded, _):
            break  // a response without a head (an error answer to bytes that never made one): the deadline stands
        }
    }

    private func arm(_ context: ChannelHandlerContext, after delay: TimeAmount) {
        disarm()
        generation += 1
        let mine = generation
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            guard mine == self.generation else { return }
            self.expire(context)
        }
    }

    private func disarm() {
        timer?.cancel()
        timer = nil
    }

    private func expire(_ context: ChannelHandlerContext) {
        timer = nil
        switch phase {
        case .busy:
            return  // a request under way is not ours to cut
        case .idle:
            settings.stats.timedOut(idle: true)
        case .awaitingHead(let started):
            settings.stats.timedOut(idle: false)
            if started {
                // Part of a head came: say why before closing (nothing else is being written now).
                let text = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
                context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: text)), promise: nil)
            }
        }
        context.close(promise: nil)
    }
}

/// Sees decoded HTTP parts and reports a whole head and a response's end
/// to `ConnectionDeadlines`; passes every part on unchanged.
final class RequestProgressWatcher: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) {
            context.triggerUserOutboundEvent(RequestProgress.headReceived, promise: nil)
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let isEnd: Bool
        if case .end = unwrapOutboundIn(data) { isEnd = true } else { isEnd = false }
        context.write(data, promise: promise)
        if isEnd { context.triggerUserOutboundEvent(RequestProgress.responseEnded, promise: nil) }
    }
}

/// Hummingbird's HTTP/1 child channel with `ConnectionDeadlines` in front
/// of its decoder (and behind TLS, when `.tls(...)` wraps this).
struct GuardedHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let base: HTTP1Channel
    let deadlines: ConnectionDeadlineSettings

    init(responder: @escaping HTTPChannelHandler.Responder, deadlines: ConnectionDeadlineSettings) {
        // Hummingbird's own idle timeout stays off: ConnectionDeadlines does its work, and it would give a
        // trickled head the whole idle timeout where the read timeout is the limit.
        base = HTTP1Channel(responder: responder, configuration: .init(additionalChannelHandlers: [RequestProgressWatcher()]))
        self.deadlines = deadlines
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let settings = deadlines
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(ConnectionDeadlines(settings))
        }.flatMap {
            self.base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

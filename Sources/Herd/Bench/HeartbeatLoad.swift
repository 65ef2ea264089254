import Foundation

/// What watching N ranks costs a coordinator, measured on this machine:
/// a child process of stand-in ranks that heartbeat as ranks do — each
/// rank a datagram to the endpoint, or its file rewritten, every interval
/// — and in this process the coordinator's own per-poll work (collect the
/// records, check for a hang, write the store), every poll interval. One
/// stand-in falls silent after the measuring window; the figure is how long
/// after the hang timeout the check names it.
public enum HeartbeatLoad {
    public struct Result: Sendable {
        public var ranks: Int
        public var transport: HeartbeatTransport
        /// CPU seconds the coordinator's process spent per second of watching.
        public var cpuPerSecond: Double
        /// The mean time one poll's work took.
        public var pollSeconds: Double
        /// Heartbeat files opened per poll, store rows written per second.
        public var filesPerPoll: Double
        public var rowsPerSecond: Double
        /// Beats per second the stand-ins managed (the target is ranks / interval).
        public var beatsPerSecond: Double
        /// How long after the silent rank's hang timeout the check named it (nil: it never did).
        public var noticeLateSeconds: Double?
    }

    public static let pollInterval = 0.5

    /// Runs one case: `ranks` stand-ins beating every `interval` s, watched
    /// for `seconds` s, then one silent; a hang timeout of `timeout` s.
    public static func measure(ranks: Int, transport: HeartbeatTransport, interval: Double = 1, timeout: Double = 10,
                               seconds: Double = 10, executable: String = "/proc/self/exe") throws -> Result {
        let dir = NSTemporaryDirectory() + "herd-heartbeat-load-\(getpid())-\(ranks)-\(transport.rawValue)"
        try? FileManager.default.removeItem(atPath: dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = RunDirectory(dir + "/run")
        try FileManager.default.createDirectory(atPath: run.heartbeats, withIntermediateDirectories: true)
        let store = try JobStore(home: dir + "/home")
        let id = try store.insert(JobRecord(name: "heartbeat-load", manifest: "-", cluster: "-", workdir: dir, runDir: run.root,
                                            launcher: "mpirun", data: ranks, tensor: 1, totalSteps: 1, maxRestarts: 0))
        let endpoint = transport == .network ? try HeartbeatEndpoint(run: run) : nil
        defer { endpoint?.close() }
        let collector = HeartbeatCollector(run: run.root, endpoint: endpoint, fileAfter: 2 * interval + pollInterval)
        let publisher = WorkerPublisher(store: store, jobID: id, refresh: WorkerHealth.staleAfter(heartbeatSeconds: interval) / 3)

        // The stand-ins: rank `silent` stops beating `warmup + seconds` s after they start.
        let warmup = 3.0, silent = ranks / 2
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: executable)) ?? executable
        let child = try Spawn.start(exe, ["heartbeat-standins", "--run", run.root, "--ranks", String(ranks), "--transport", transport.rawValue,
                                          "--interval", String(interval), "--silent-rank", String(silent), "--silent-after", String(warmup + seconds)],
                                    environment: ProcessInfo.processInfo.environment, log: dir + "/standins.log", detach: .processGroup)
        defer { Spawn.stopGroup(child, grace: 1); _ = Spawn.wait(child) }
        let started = Date().timeIntervalSince1970

        func poll() throws -> String? {
            let now = Date().timeIntervalSince1970
            let beats = collector.collect(world: ranks, now: now)
            if transport == .files {
                // The design before the endpoint: every row rewritten every poll.
                try store.setWorkers(id, beats.map { WorkerRecord(rank: $0.rank, host: $0.host, pid: Int($0.pid), step: $0.step, phase: $0.phase,
                                                                  heartbeat: $0.time, progress: $0.progressTime) })
            } else {
                try publisher.publish(beats)
            }
            return HangCheck.check(beats, world: ranks, runningSince: started, now: now, timeout: timeout)
        }

        while Date().timeIntervalSince1970 < started + warmup {
            _ = try poll()
            Thread.sleep(forTimeInterval: pollInterval)
        }
        // The window: this process's CPU over whole polls.
        let cpu0 = processCPU(), t0 = Date().timeIntervalSince1970
        let received0 = endpoint?.received ?? 0
        var polls = 0, work = 0.0, files = 0, rows = 0
        while Date().timeIntervalSince1970 < t0 + seconds {
            let a = Date().timeIntervalSince1970
            _ = try poll()
            work += Date().timeIntervalSince1970 - a
            polls += 1
            files += collector.filesRead
            rows += transport == .files ? ranks : publisher.rowsWritten
            Thread.sleep(forTimeInterval: pollInterval)
        }
        let elapsed = Date().timeIntervalSince1970 - t0, cpu = processCPU() - cpu0
        // Files: the beats are the files rewritten during the window's last interval (a lower bound).
        let beats = transport == .network ? Double((endpoint?.received ?? 0) - received0) / elapsed
            : Double(HeartbeatRecord.readAll(run: run.root).filter { $0.time > t0 + elapsed - interval }.count) / interval
        // The silence: how long after the rank's last beat plus the timeout does the check name it?
        var late: Double?
        let silencedAt = started + warmup + seconds
        while Date().timeIntervalSince1970 < silencedAt + 3 * timeout {
            if let why = try poll(), why.hasPrefix("rank \(silent) ") {
                let last = collector.collect(world: ranks).first { $0.rank == silent }?.time ?? silencedAt
                late = Date().timeIntervalSince1970 - last - timeout
                break
            }
            Thread.sleep(forTimeInterval: pollInterval)
        }
        return Result(ranks: ranks, transport: transport, cpuPerSecond: cpu / elapsed, pollSeconds: work / Double(max(polls, 1)),
                      filesPerPoll: Double(files) / Double(max(polls, 1)), rowsPerSecond: Double(rows) / elapsed,
                      beatsPerSecond: beats, noticeLateSeconds: late)
    }

    /// This process's user + system CPU seconds so far.
    static func processCPU() -> Double {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
    }

    /// The stand-in ranks (`herd heartbeat-standins`): two threads, each
    /// beating for half of the ranks every `interval` s — the same datagram
    /// or file a rank's Heartbeat sends or writes — until killed; rank
    /// `silentRank` stops after `silentAfter` s.
    public static func standIns(run: String, ranks: Int, transport: HeartbeatTransport, interval: Double,
                                silentRank: Int, silentAfter: Double) -> Never {
        let start = Date().timeIntervalSince1970
        let host = ProcessInfo.processInfo.hostName, pid = getpid()
        let threads = 2
        for t in 0..<threads {
            Thread.detachNewThread {
                let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
                var target = sockaddr_in()
                var nonce: UInt64 = 0
                while transport == .network && nonce == 0 {
                    if let e = HeartbeatAddress.read(RunDirectory(run)) {
                        nonce = e.nonce
                        target = UDP.address(inet_addr("127.0.0.1"), port: e.port)
                    } else { usleep(10_000) }
                }
                let mine = Array(stride(from: t, to: ranks, by: threads))
                while true {
                    let pass = Date().timeIntervalSince1970
                    for rank in mine {
                        let now = Date().timeIntervalSince1970
                        if rank == silentRank && now - start > silentAfter { continue }
                        let r = HeartbeatRecord(rank: rank, host: host, pid: pid, step: Int(now - start), phase: "train", time: now, progressTime: now)
                        if transport == .network {
                            UDP.send(fd, HeartbeatDatagram.beat(r, nonce: nonce), to: target)
                        } else if let data = try? JSONEncoder().encode(r) {
                            try? data.write(to: URL(fileURLWithPath: HeartbeatRecord.file(run: run, rank: rank)), options: .atomic)
                        }
                    }
                    // The acknowledgements are not read: drop them.
                    var sink = [UInt8](repeating: 0, count: 64)
                    while transport == .network && recv(fd, &sink, sink.count, Int32(MSG_DONTWAIT)) > 0 {}
                    let left = interval - (Date().timeIntervalSince1970 - pass)
                    if left > 0 { Thread.sleep(forTimeInterval: left) }
                }
            }
        }
        while true { sleep(60) }
    }
}

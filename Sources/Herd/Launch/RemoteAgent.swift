import Foundation

/// The command that runs a command on another node: the agent mpirun itself
/// starts its daemons with (`plm_rsh_agent`: ssh unless the cluster or the
/// environment names another, as the simulated nodes' `herd-sim rsh` does).
/// mpirun's group kill reaches only the ranks of the host mpirun runs on;
/// the others end when their daemon notices — a partitioned node's never
/// does. Through the agent the coordinator kills ranks on every node, and
/// the dashboard tells a dead remote rank from a silent one.
public struct RemoteAgent: Sendable {
    public var command: [String]
    /// Variables the agent runs with (the cluster's, over this process's, as mpirun gets them).
    public var environment: [String: String]

    public init(command: [String], environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.command = command; self.environment = environment
    }

    /// The cluster's agent: its environment's `OMPI_MCA_plm_rsh_agent`, else
    /// this process's, else ssh (mpirun's default); of a list "a : b", the first.
    public init(cluster: ClusterSpec, environment: [String: String] = ProcessInfo.processInfo.environment) {
        let text = cluster.environment["OMPI_MCA_plm_rsh_agent"] ?? environment["OMPI_MCA_plm_rsh_agent"] ?? "ssh"
        let first = text.split(separator: ":").first.map(String.init) ?? "ssh"
        var words = first.split(separator: " ").map(String.init)
        if words.isEmpty { words = ["ssh"] }
        // ssh must never wait for a password or a host that does not answer.
        if (words[0] as NSString).lastPathComponent == "ssh" { words += ["-o", "BatchMode=yes", "-o", "ConnectTimeout=5"] }
        command = words
        self.environment = environment.merging(cluster.environment) { $1 }
    }

    /// Runs `script` (one shell command line) on `host`; nil when the agent
    /// failed or did not finish within `timeout` seconds.
    func run(_ script: String, on host: String, timeout: Double) -> String? {
        let executable = command[0].contains("/") ? command[0] : Spawn.which(command[0]) ?? command[0]
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = Array(command.dropFirst()) + [host, script]
        p.environment = environment
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning {
            p.terminate()
            usleep(100_000)
            if p.isRunning { Foundation.kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()
            return nil
        }
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return p.terminationStatus == 0 ? text : nil
    }

    /// Which of `pids` are running on `host` (nil: the host did not answer).
    public func alive(_ pids: [Int32], on host: String, timeout: Double = 10) -> Set<Int32>? {
        guard !pids.isEmpty else { return [] }
        let list = pids.map(String.init).joined(separator: " ")
        // A zombie is not alive: kill -0 succeeds on one, its state in /proc says Z.
        let script = "for p in \(list); do if kill -0 $p 2>/dev/null && ! grep -q '^[0-9]* (.*) Z' /proc/$p/stat 2>/dev/null; then echo $p; fi; done; true"
        guard let out = run(script, on: host, timeout: timeout) else { return nil }
        return Set(out.split(whereSeparator: \.isNewline).compactMap { Int32($0) })
    }

    /// SIGKILL to `pids` on `host`; whether the agent reached it.
    @discardableResult
    public func kill(_ pids: [Int32], on host: String, timeout: Double = 10) -> Bool {
        guard !pids.isEmpty else { return true }
        return run("kill -9 \(pids.map(String.init).joined(separator: " ")) 2>/dev/null; true", on: host, timeout: timeout) != nil
    }

    /// `kill` on every host at once (a host that does not answer does not hold up the others).
    public func kill(_ ranks: [(host: String, pid: Int32)], timeout: Double = 10) {
        let byHost = Dictionary(grouping: ranks, by: \.host).map { ($0.key, $0.value.map(\.pid)) }
        DispatchQueue.concurrentPerform(iterations: byHost.count) { i in
            kill(byHost[i].1, on: byHost[i].0, timeout: timeout)
        }
    }
}

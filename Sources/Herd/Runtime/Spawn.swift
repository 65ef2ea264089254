import CPosix
import Foundation

/// Child processes the coordinator owns: started with posix_spawn so that
/// they get their own process group (mpirun: one kill reaches it and the
/// ranks it forked) or their own session (a coordinator that outlives the
/// terminal), stdin from /dev/null, output appended to a log file, no
/// inherited descriptors, and default signal dispositions.
public enum Spawn {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public enum Detach { case processGroup, session }

    public static func start(_ executable: String, _ arguments: [String], environment: [String: String],
                             log: String, detach: Detach) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        posix_spawn_file_actions_addclosefrom_np(&actions, 3)

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        flags |= detach == .session ? Int32(HERD_POSIX_SPAWN_SETSID) : Int32(POSIX_SPAWN_SETPGROUP)
        posix_spawnattr_setflags(&attr, Int16(flags))
        posix_spawnattr_setpgroup(&attr, 0)
        var none = sigset_t(), defaults = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attr, &none)
        sigemptyset(&defaults)
        for s in [SIGTERM, SIGINT, SIGUSR2, SIGPIPE, SIGHUP] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attr, argv, envp)
        guard rc == 0 else { throw Failure(description: "cannot start \(executable): \(String(cString: strerror(rc)))") }
        return pid
    }

    /// The exit status if the child has ended (128 + signal when a signal
    /// ended it, as a shell reports it), nil while it runs.
    public static func poll(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == 0 { return nil }
        if r < 0 { return errno == ECHILD ? -1 : nil }
        return decode(status)
    }

    static func decode(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// Whether a process exists and has not ended (a zombie, which nothing
    /// reaped yet — orphans in containers whose init does not reap — has ended).
    public static func isAlive(_ pid: Int) -> Bool {
        guard pid > 0, kill(pid_t(pid), 0) == 0 || errno == EPERM else { return false }
        guard let fields = statFields(pid) else { return true }
        return fields.first != "Z"
    }

    /// The fields of /proc/PID/stat after the command's closing parenthesis
    /// (which may itself hold spaces and parentheses): field 3, the state, first.
    public static func statFields(_ pid: Int) -> [Substring]? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ")
    }

    /// The variable a parent sets for children that must die with it.
    public static let dieWithParentVariable = "HERD_DIE_WITH_PARENT"

    /// A child started with `dieWithParentVariable` = its parent's pid asks
    /// the kernel to kill it when that parent dies (a stage of a pipeline
    /// whose scheduler was SIGKILLed must not run on, writing beside the
    /// resumed one); if the parent is already gone, it exits at once.
    public static func dieWithParentIfAsked() {
        guard let text = ProcessInfo.processInfo.environment[dieWithParentVariable], let parent = Int32(text) else { return }
        unsetenv(dieWithParentVariable)   // for this process only, not its own children
        _ = herd_die_with_parent()
        if getppid() != parent { exit(137) }
    }

    /// The first executable called `name` on PATH.
    public static func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// Runs a command to its end with its output appended to `log`, and
    /// returns its status. For commands that leave daemons behind (which may
    /// keep a pipe open long after the command itself has ended).
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String], log: String) throws -> Int32 {
        wait(try start(executable, arguments, environment: environment, log: log, detach: .processGroup))
    }

    /// Waits for a child to end and returns its status as `poll` does.
    public static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return decode(status)
    }

    /// SIGTERM to a process group, then SIGKILL if anything of it is left
    /// after `grace` seconds.
    public static func stopGroup(_ pid: pid_t, grace: Double = 5) {
        guard kill(-pid, 0) == 0 else { return }
        kill(-pid, SIGTERM)
        let deadline = Date().addingTimeInterval(grace)
        while kill(-pid, 0) == 0 && Date() < deadline { usleep(100_000) }
        kill(-pid, SIGKILL)
    }

    /// Runs a short command to the end and returns its status and output.
    public static func capture(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        if let environment { p.environment = environment }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }
}

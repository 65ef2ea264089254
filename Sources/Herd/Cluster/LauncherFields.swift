import Foundation

// The cluster file's fields about how ranks are started: the launcher, the
// command its commands run under, their environment, and Slurm's step launcher.

extension ClusterSpec.Launcher {
    static func parse(_ top: YAMLFields) throws(ManifestError) -> Self {
        let l = try top.requiredString("launcher", "mpirun or slurm")
        guard let launcher = Self(rawValue: l) else {
            throw top.error("launcher", "unknown launcher \"\(l)\"; expected one of: mpirun, slurm")
        }
        return launcher
    }
}

extension ClusterSpec.StepLauncher {
    /// `step_launcher`, only for the slurm launcher (mpirun by default).
    static func parse(_ top: YAMLFields, launcher: ClusterSpec.Launcher) throws(ManifestError) -> Self {
        guard let s = try top.string("step_launcher") else { return .mpirun }
        guard launcher == .slurm, let step = Self(rawValue: s) else {
            throw top.error("step_launcher", "for the slurm launcher: mpirun or srun (how the batch job starts its ranks), got \"\(s)\"")
        }
        return step
    }
}

extension ClusterSpec {
    /// `launcher_prefix`: an argv whose first word must run here (none: the commands run as they are).
    static func parseLauncherPrefix(_ top: YAMLFields) throws(ManifestError) -> [String] {
        guard top.has("launcher_prefix") else { return [] }
        guard let argv = try top.strings("launcher_prefix"), !argv.isEmpty else {
            throw top.error("launcher_prefix", "a non-empty list of words (an argv) that the launcher's commands (mpirun, or sbatch and the other Slurm commands) run under")
        }
        guard Spawn.which(argv[0]) != nil || FileManager.default.isExecutableFile(atPath: argv[0]) else {
            throw top.error("launcher_prefix", "\(argv[0]) is not an executable file (nor a command on PATH); relative paths are taken from the directory herd runs in")
        }
        return argv
    }

    /// `environment`: variables set for the launcher's commands and the ranks.
    static func parseEnvironment(_ top: YAMLFields) throws(ManifestError) -> [String: String] {
        guard let env = top.mapping["environment"] else { return [:] }
        guard let m = env.mapping else { throw top.error("environment", "expected a mapping of variable names to strings") }
        var environment: [String: String] = [:]
        for (k, v) in m {
            guard let key = k.string, let value = v.string, key.range(of: "^[A-Za-z_][A-Za-z0-9_]*$", options: .regularExpression) != nil else {
                throw top.error("environment", "expected NAME: value pairs (names of letters, digits and _), got \(k.string ?? "?")")
            }
            environment[key] = value
        }
        return environment
    }
}

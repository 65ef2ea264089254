import Foundation

/// Debian's OpenBLAS 0.3.21 does not recognise recent AVX-512 CPUs (AMD Zen 4
/// among them) and falls back to its Haswell kernels, at about half the
/// sgemm speed. The kernel family is chosen when the library loads, from
/// OPENBLAS_CORETYPE, so it must be in a process's environment before it
/// starts: `herd` re-executes itself once with it set, and launchers pass it
/// to every worker. A value the user set is always respected.
public enum BLASEnvironment {
    public static let variable = "OPENBLAS_CORETYPE"

    /// The OPENBLAS_CORETYPE a training process on this CPU should have, or
    /// nil when OpenBLAS's own choice is already right.
    public static func recommendedCoreType() -> String? {
        guard cpuFlags().isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"]) else { return nil }
        return "SkylakeX"
    }

    /// Kernel families OpenBLAS 0.3.21 has with AVX-512.
    static let avx512Cores: Set<String> = ["skylakex", "cooperlake", "sapphirerapids"]

    /// Environment entries to add when launching a process that trains on
    /// this machine: the user's choice if set; else the recommended kernels
    /// unless OpenBLAS already picked AVX-512 ones here by itself.
    public static func workerEnvironment() -> [String: String] {
        if let set = ProcessInfo.processInfo.environment[variable] { return [variable: set] }
        if avx512Cores.contains(Matmul.coreName.lowercased()) { return [:] }
        if let rec = recommendedCoreType() { return [variable: rec] }
        return [:]
    }

    /// Re-executes this process with the recommended kernels if OpenBLAS
    /// picked slower ones and the user did not choose. Returns if nothing to do.
    public static func reexecWithFastKernelsIfNeeded() {
        guard ProcessInfo.processInfo.environment[variable] == nil,
              let rec = recommendedCoreType() else { return }
        if avx512Cores.contains(Matmul.coreName.lowercased()) { return }
        setenv(variable, rec, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // execv returns only on failure: carry on with the kernels we have.
    }

    static func cpuFlags() -> Set<String> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }
}

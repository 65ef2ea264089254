import CMPI
import COpenBLAS
import CZstd

/// The system libraries Herd is linked against, as they report themselves.
/// `herd version` prints these; a test checks that each one answers, so a
/// broken pkg-config setup shows before the parts that need them.
public enum Libraries {
    public static var openBLAS: String {
        guard let c = openblas_get_config() else { return "OpenBLAS (no config string)" }
        return String(cString: c).trimmingCharacters(in: .whitespaces)
    }

    public static var zstd: String { "zstd " + String(cString: ZSTD_versionString()) }

    /// MPI_Get_library_version may be called before MPI_Init.
    public static var mpi: String {
        var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_LIBRARY_VERSION_STRING))
        var length: Int32 = 0
        guard MPI_Get_library_version(&buffer, &length) == herd_mpi_success() else { return "MPI (unknown)" }
        let text = String(cString: buffer)
        return text.split(separator: ",").first.map(String.init) ?? text
    }
}

import Foundation

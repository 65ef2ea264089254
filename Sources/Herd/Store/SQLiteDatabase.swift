import CSQLite
import Foundation

/// What SQLite said, with the database and the statement.
public struct SQLiteError: Error, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "job store \(path): \(message)" }
}

/// A value bound to or read from a statement.
public enum SQLiteValue: Sendable, Equatable {
    case null, int(Int64), double(Double), text(String)

    public var int: Int? { if case .int(let v) = self { return Int(v) }; if case .double(let v) = self { return Int(v) }; return nil }
    public var double: Double? { if case .double(let v) = self { return v }; if case .int(let v) = self { return Double(v) }; return nil }
    public var text: String? { if case .text(let v) = self { return v }; return nil }
}

/// A thin connection to SQLite's C API: WAL journal (readers never block the
/// coordinator that writes), a busy timeout (several coordinators and CLI
/// calls share one file), statements with bound parameters only.
public final class SQLiteDatabase: @unchecked Sendable {
    private var db: OpaquePointer?
    public let path: String

    public init(path: String) throws {
        self.path = path
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX
        guard sqlite3_open_v2(path, &db, flags, nil) == SQLITE_OK else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(db)
            throw SQLiteError(path: path, message: message)
        }
        sqlite3_busy_timeout(db, 15_000)
        try execute("PRAGMA journal_mode = WAL")
        try execute("PRAGMA synchronous = NORMAL")
        try execute("PRAGMA foreign_keys = ON")
    }

    deinit { sqlite3_close(db) }

    private func fail(_ sql: String) -> SQLiteError {
        SQLiteError(path: path, message: "\(String(cString: sqlite3_errmsg(db))) (in: \(sql))")
    }

    /// Runs `sql` with `params` bound to its `?`s and returns the rows, each
    /// a column-name → value dictionary.
    @discardableResult
    public func query(_ sql: String, _ params: [SQLiteValue] = []) throws -> [[String: SQLiteValue]] {
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK else { throw fail(sql) }
        defer { sqlite3_finalize(stmt) }
        bind(stmt, params)
        var rows: [[String: SQLiteValue]] = []
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw fail(sql) }
            var row: [String: SQLiteValue] = [:]
            for c in 0..<sqlite3_column_count(stmt) {
                let name = String(cString: sqlite3_column_name(stmt, c))
                switch sqlite3_column_type(stmt, c) {
                case SQLITE_INTEGER: row[name] = .int(sqlite3_column_int64(stmt, c))
                case SQLITE_FLOAT: row[name] = .double(sqlite3_column_double(stmt, c))
                case SQLITE_TEXT: row[name] = .text(String(cString: sqlite3_column_text(stmt, c)))
                default: row[name] = .null
                }
            }
            rows.append(row)
        }
        return rows
    }

    public func execute(_ sql: String, _ params: [SQLiteValue] = []) throws { try query(sql, params) }

    /// One statement run once per row of parameters, prepared once (a
    /// coordinator writing thousands of workers rows a second).
    public func executeMany(_ sql: String, _ rows: [[SQLiteValue]]) throws {
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK else { throw fail(sql) }
        defer { sqlite3_finalize(stmt) }
        for params in rows {
            sqlite3_reset(stmt)
            sqlite3_clear_bindings(stmt)
            bind(stmt, params)
            guard sqlite3_step(stmt) == SQLITE_DONE else { throw fail(sql) }
        }
    }

    private func bind(_ stmt: OpaquePointer?, _ params: [SQLiteValue]) {
        for (i, p) in params.enumerated() {
            let index = Int32(i + 1)
            switch p {
            case .null: sqlite3_bind_null(stmt, index)
            case .int(let v): sqlite3_bind_int64(stmt, index, v)
            case .double(let v): sqlite3_bind_double(stmt, index, v)
            case .text(let v): sqlite3_bind_text(stmt, index, v, -1, herd_sqlite_transient())
            }
        }
    }

    public var lastInsertRowID: Int { Int(sqlite3_last_insert_rowid(db)) }

    /// `body` inside BEGIN IMMEDIATE … COMMIT (rolled back if it throws).
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }
}

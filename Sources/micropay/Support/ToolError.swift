import ArgumentParser
import Foundation

/// A failure the tool reports as one line on stderr, with an exit status
/// from sysexits(3) so scripts can tell the causes apart:
///   1  a check failed (selftest, audit, the demo's checks)
///   3  verified, but the batch file ends in a truncated record
///  64  bad command line (also ArgumentParser's own usage errors)
///  65  bad input data: not a batch file, a malformed object, a bad key;
///      or a refusal by a role (a request or Deposit the bank refuses,
///      insufficient funds, a state made for another merchant or key)
///  66  an input file is missing or unreadable
///  73  an output file cannot be created
///  74  an I/O or database error while working
///  75  try again later: the bank's tickets kept changing while a Deposit
///      was judged (nothing was settled), or the merchant's state is in use
///      by another process (nothing was done)
struct ToolError: Error, CustomStringConvertible {
    enum Kind: Int32 {
        case checkFailed = 1
        case truncatedTail = 3
        case usage = 64
        case dataError = 65
        case noInput = 66
        case cannotCreate = 73
        case ioError = 74
        case tryAgain = 75
    }
    let kind: Kind
    let message: String

    init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    var description: String { message }
}

/// Runs a command body; any error becomes one line on stderr and an exit
/// status, never a stack trace.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as ToolError {
        printError(error.message)
        throw ExitCode(error.kind.rawValue)
    } catch let error as ExitCode {
        throw error
    } catch {
        printError("\(error)")
        throw ExitCode(ToolError.Kind.ioError.rawValue)
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data("micropay: \(message)\n".utf8))
}

/// Reads a whole (small) input file, or fails with the file's name.
func readInput(_ path: String) throws -> [UInt8] {
    guard FileManager.default.isReadableFile(atPath: path),
          let data = FileManager.default.contents(atPath: path) else {
        throw ToolError(.noInput, "\(path): cannot read the file")
    }
    return [UInt8](data)
}

/// Writes an output file whole (temp file then rename), or fails with its name.
func writeOutput(_ path: String, _ bytes: [UInt8]) throws {
    do {
        try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
    } catch {
        throw ToolError(.cannotCreate, "\(path): cannot write the file")
    }
}

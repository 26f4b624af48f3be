import ArgumentParser
import DCGANParallel
import ParallelTensor

extension OptimizerKind: ExpressibleByArgument {}
extension GANModelKind: ExpressibleByArgument {}
extension ShardedExecutor.Scheduling: ExpressibleByArgument {}

/// `--threads`, shared by every command that runs work on worker threads.
struct ThreadOptions: ParsableArguments {
    @Option(help: "Worker threads (default: one per physical core). Results do not depend on it.")
    var threads: Int?

    func validate() throws {
        _ = try checkThreads(threads)
    }

    /// The thread count to use: the flag, or the physical cores hwloc sees.
    var count: Int { threads ?? defaultThreadCount() }
}

/// A comma-separated list of positive integers, as `pgan bench` takes thread counts and batch sizes.
func positiveIntegers(_ text: String, flag: String) throws -> [Int] {
    let values = text.split(separator: ",", omittingEmptySubsequences: false)
        .map { Int($0.trimmed()) }
    guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) >= 1 }) else {
        throw ValidationError("--\(flag) must be a comma-separated list of positive integers (got '\(text)')")
    }
    return values.map { $0! }
}

/// Quotes a path for a shell command line when it needs it.
func shellQuoted(_ text: String) -> String {
    let plain = text.allSatisfy { $0.isLetter || $0.isNumber || "-_./+=:@%".contains($0) }
    return plain && !text.isEmpty ? text : "'" + text.map { $0 == "'" ? "'\\''" : String($0) }.joined() + "'"
}

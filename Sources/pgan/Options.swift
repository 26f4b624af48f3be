import ArgumentParser
import DCGANParallel
import ParallelTensor

extension OptimizerKind: ExpressibleByArgument {}
extension ShardedExecutor.Scheduling: ExpressibleByArgument {}

/// Quotes a path for a shell command line when it needs it.
func shellQuoted(_ text: String) -> String {
    let plain = text.allSatisfy { $0.isLetter || $0.isNumber || "-_./+=:@%".contains($0) }
    return plain && !text.isEmpty ? text : "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

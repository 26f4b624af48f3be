import ArgumentParser
import DCGANParallel
#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import ParallelTensor

/// pgan's entry point: parse, run, and map failures to one line on stderr and an exit status — 2 for usage errors
/// (bad flags or values), 1 for runs that failed (unreadable data, unwritable output, corrupt checkpoint).
@main
enum PganMain {
    static func main() {
        do {
            var command = try Pgan.parseAsRoot()
            try command.run()
            Cluster.finish()
        } catch let error as ConfigurationError {
            fail("\(error.description)", status: 2)
        } catch let error as DataError {
            fail("\(error.description)", status: 1)
        } catch let error as TrainingDiverged {
            fail("\(error.description)", status: 1)
        } catch let error as RanksDisagree {
            fail("\(error.description)", status: 1)
        } catch {
            let code = Pgan.exitCode(for: error)
            if code == .success {
                print(Pgan.fullMessage(for: error))
                exit(0)
            }
            if error is ExitCode {
                // An interrupted run: every rank agreed to stop at the same step.
                Cluster.finish()
                exit(code.rawValue)
            }
            // Parse and validation errors from ArgumentParser: one line, then where to look.
            let message = Pgan.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            fail(message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message, status: 2,
                 hint: "see 'pgan help \(commandName(from: CommandLine.arguments))'")
        }
    }

    static func commandName(from arguments: [String]) -> String {
        arguments.dropFirst().first { ["train", "sample", "bench", "topology"].contains($0) } ?? ""
    }

    static func fail(_ message: String, status: Int32, hint: String? = nil) -> Never {
        writeToStandardError("pgan: \(Cluster.errorPrefix)error: \(message)\n")
        if let hint { writeToStandardError("\(hint)\n") }
        Cluster.exit(status: status)
    }
}

struct Pgan: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pgan",
        abstract: "Train the seed DCGAN on MNIST digits, data-parallel over every core, bit-identical for any thread count.",
        subcommands: [Train.self, Sample.self, Bench.self, TopologyCommand.self, ClassifierCommand.self, Eval.self]
    )
}

/// Thread counts default to the physical cores hwloc sees.
func defaultThreadCount() -> Int { max(Topology.shared.coreCount, 1) }

func checkThreads(_ threads: Int?) throws -> Int {
    let count = threads ?? defaultThreadCount()
    guard count >= 1 else { throw ConfigurationError("--threads must be at least 1 (got \(count))") }
    // Every worker thread gets its own scratch memory (about 1 MB); far beyond the machine's size that is only waste.
    guard count <= 1024 else { throw ConfigurationError("--threads must be at most 1024 (got \(count))") }
    return count
}

#if canImport(Glibc)
import Glibc
#endif
import CHwloc

/// What hwloc sees of this machine, and the rule that maps worker slots to cores.
///
/// The pinning order (docs/ARCHITECTURE.md §2): one processing unit (PU, a hardware thread) of every physical core
/// first, then every core's second PU, and so on; worker slot k gets entry k mod count. On a machine without SMT
/// that is simply core k.
public final class Topology: @unchecked Sendable {
    public struct Cache: Sendable, Equatable {
        public let level: Int
        public let sizeBytes: Int
        public let count: Int
    }

    public let packageCount: Int
    public let numaNodeCount: Int
    public let coreCount: Int
    public let processingUnitCount: Int
    public let caches: [Cache]
    /// OS indices of PUs, grouped by core: `coresProcessingUnits[core]` lists that core's hardware threads.
    public let coresProcessingUnits: [[Int]]
    /// Why hwloc could not be used, when it could not (counts then come from the OS and binding is disabled).
    public let unavailableReason: String?

    /// True for a topology built from a synthetic description rather than this machine (binding is refused).
    public let isSynthetic: Bool
    /// When the process was started bound to some of the machine's PUs (by `mpirun --map-by …`, `taskset`,
    /// `numactl`), or is one of several unbound processes of an MPI job on this machine: the PUs it keeps, as a list
    /// ("0-3,8-11"), and why. The topology then holds only those PUs, so the default thread count and the pinning map
    /// stay inside them; nil when the process may run anywhere.
    public let processBinding: String?

    private let topology: hwloc_topology_t?
    private let lock = PThreadMutex()

    public static let shared = Topology.detect()

    private init(topology: hwloc_topology_t?, packageCount: Int, numaNodeCount: Int, processingUnitCount: Int,
                 coresProcessingUnits: [[Int]], caches: [Cache], unavailableReason: String?, isSynthetic: Bool = false,
                 processBinding: String? = nil) {
        self.topology = topology
        self.isSynthetic = isSynthetic
        self.processBinding = processBinding
        self.packageCount = packageCount
        self.numaNodeCount = numaNodeCount
        self.processingUnitCount = processingUnitCount
        self.coresProcessingUnits = coresProcessingUnits
        self.coreCount = coresProcessingUnits.count
        self.caches = caches
        self.unavailableReason = unavailableReason
    }

    /// Loads the topology with hwloc; without it, falls back to the OS's processor count (one PU per core).
    public static func detect() -> Topology {
        var handle: hwloc_topology_t?
        guard hwloc_topology_init(&handle) == 0, let topo = handle else {
            return fallback(reason: "hwloc_topology_init failed")
        }
        return load(topo, synthetic: false)
    }

    /// A machine described in hwloc's synthetic syntax ("package:2 core:8 pu:2": 2 packages of 8 cores of 2
    /// hardware threads), for showing or testing the pinning map of a machine other than this one. Threads cannot be
    /// bound on it. Fails with hwloc's complaint when hwloc rejects the description.
    public static func synthetic(_ description: String) throws -> Topology {
        var handle: hwloc_topology_t?
        guard hwloc_topology_init(&handle) == 0, let topo = handle else {
            throw TopologyError(description: "hwloc_topology_init failed")
        }
        guard hwloc_topology_set_synthetic(topo, description) == 0 else {
            hwloc_topology_destroy(topo)
            throw TopologyError(description: "hwloc does not accept the synthetic topology '\(description)' (expected e.g. 'package:2 core:8 pu:2')")
        }
        let topology = load(topo, synthetic: true)
        if let reason = topology.unavailableReason { throw TopologyError(description: reason) }
        return topology
    }

    private static func load(_ topo: hwloc_topology_t, synthetic: Bool) -> Topology {
        guard hwloc_topology_load(topo) == 0 else {
            hwloc_topology_destroy(topo)
            return fallback(reason: "hwloc_topology_load failed")
        }
        let binding = synthetic ? nil : restrictToProcessBinding(topo)
        func count(_ type: hwloc_obj_type_t) -> Int { Int(max(hwloc_get_nbobjs_by_type(topo, type), 0)) }
        let processingUnits = count(HWLOC_OBJ_PU)
        var cores: [[Int]] = []
        for index in 0..<count(HWLOC_OBJ_CORE) {
            guard let core = hwloc_get_obj_by_type(topo, HWLOC_OBJ_CORE, UInt32(index)) else { continue }
            var units: [Int] = []
            let childCount = Int(hwloc_get_nbobjs_inside_cpuset_by_type(topo, core.pointee.cpuset, HWLOC_OBJ_PU))
            for child in 0..<childCount {
                if let pu = hwloc_get_obj_inside_cpuset_by_type(topo, core.pointee.cpuset, HWLOC_OBJ_PU, UInt32(child)) {
                    units.append(Int(pu.pointee.os_index))
                }
            }
            if !units.isEmpty { cores.append(units) }
        }
        if cores.isEmpty {
            // Some virtual machines report PUs but no cores: treat every PU as a core.
            cores = (0..<processingUnits).compactMap { index in
                hwloc_get_obj_by_type(topo, HWLOC_OBJ_PU, UInt32(index)).map { [Int($0.pointee.os_index)] }
            }
        }
        var caches: [Cache] = []
        for (level, type) in [(1, HWLOC_OBJ_L1CACHE), (2, HWLOC_OBJ_L2CACHE), (3, HWLOC_OBJ_L3CACHE)] {
            let n = count(type)
            if n > 0, let first = hwloc_get_obj_by_type(topo, type, 0), let attributes = first.pointee.attr {
                caches.append(Cache(level: level, sizeBytes: Int(attributes.pointee.cache.size), count: n))
            }
        }
        return Topology(topology: topo, packageCount: max(count(HWLOC_OBJ_PACKAGE), 1),
                        numaNodeCount: max(count(HWLOC_OBJ_NUMANODE), 1), processingUnitCount: processingUnits,
                        coresProcessingUnits: cores, caches: caches, unavailableReason: nil, isSynthetic: synthetic,
                        processBinding: binding)
    }

    /// Restricts the topology to the PUs the process is bound to, when that is not all of them. A process that is
    /// not bound but is one of L processes of an MPI job on this machine (Open MPI's `OMPI_COMM_WORLD_LOCAL_RANK`
    /// and `…_LOCAL_SIZE`, as with `mpirun --bind-to none`) keeps the l-th of L equal runs of cores, so the ranks'
    /// workers do not all pin to the first cores. Returns the PUs kept and why, or nil.
    private static func restrictToProcessBinding(_ topo: hwloc_topology_t) -> String? {
        guard let kept = hwloc_bitmap_alloc() else { return nil }
        defer { hwloc_bitmap_free(kept) }
        guard hwloc_get_cpubind(topo, kept, Int32(HWLOC_CPUBIND_PROCESS.rawValue)) == 0,
              hwloc_bitmap_iszero(kept) == 0, let all = hwloc_topology_get_topology_cpuset(topo) else { return nil }
        hwloc_bitmap_and(kept, kept, all)
        var reason = "bound by its launcher"
        if hwloc_bitmap_isequal(kept, all) != 0 {
            func variable(_ name: String) -> Int? { getenv(name).flatMap { Int(String(cString: $0)) } }
            guard let local = variable("OMPI_COMM_WORLD_LOCAL_RANK"), let locals = variable("OMPI_COMM_WORLD_LOCAL_SIZE"),
                  locals > 1, (0..<locals).contains(local) else { return nil }
            let type = Int(hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE)) >= locals ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU
            let count = Int(hwloc_get_nbobjs_by_type(topo, type))
            guard count >= locals else { return nil }
            hwloc_bitmap_zero(kept)
            for index in (local * count / locals)..<((local + 1) * count / locals) {
                if let object = hwloc_get_obj_by_type(topo, type, UInt32(index)) {
                    hwloc_bitmap_or(kept, kept, object.pointee.cpuset)
                }
            }
            reason = "share \(local + 1) of \(locals) of this machine's cores for the unbound ranks of an MPI job"
        }
        guard hwloc_bitmap_iszero(kept) == 0, hwloc_topology_restrict(topo, kept, 0) == 0 else { return nil }
        var text = [CChar](repeating: 0, count: 4096)
        hwloc_bitmap_list_snprintf(&text, text.count, kept)
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + " (\(reason))"
    }

    private static func fallback(reason: String) -> Topology {
        let online = max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1)
        return Topology(topology: nil, packageCount: 1, numaNodeCount: 1, processingUnitCount: online,
                        coresProcessingUnits: (0..<online).map { [$0] }, caches: [], unavailableReason: reason)
    }

    deinit {
        if let topology { hwloc_topology_destroy(topology) }
    }

    /// PU order for pinning: the first PU of every core, then the second of every core that has one, and so on.
    public var pinningOrder: [Int] {
        var order: [Int] = []
        let depth = coresProcessingUnits.map(\.count).max() ?? 0
        for level in 0..<depth {
            for units in coresProcessingUnits where level < units.count { order.append(units[level]) }
        }
        return order
    }

    /// The PU (OS index) that worker slot `slot` is pinned to.
    public func processingUnit(forSlot slot: Int) -> Int {
        let order = pinningOrder
        return order[slot % order.count]
    }

    /// The pinning map for `threads` workers: slot k → PU OS index.
    public func pinningMap(threads: Int) -> [Int] {
        let order = pinningOrder
        return (0..<threads).map { order[$0 % order.count] }
    }

    /// Binds the calling thread to one PU. Returns false (and binds nothing) when hwloc cannot do it here.
    @discardableResult
    public func bindCurrentThread(toProcessingUnit osIndex: Int) -> Bool {
        guard let topology, !isSynthetic else { return false }
        lock.lock()
        defer { lock.unlock() }
        guard let set = hwloc_bitmap_alloc() else { return false }
        defer { hwloc_bitmap_free(set) }
        hwloc_bitmap_only(set, UInt32(osIndex))
        return hwloc_set_cpubind(topology, set, Int32(HWLOC_CPUBIND_THREAD.rawValue)) == 0
    }

    /// The calling thread's current binding, to restore later (nil when unknown).
    public func currentThreadBinding() -> [Int]? {
        guard let topology, !isSynthetic else { return nil }
        lock.lock()
        defer { lock.unlock() }
        guard let set = hwloc_bitmap_alloc() else { return nil }
        defer { hwloc_bitmap_free(set) }
        guard hwloc_get_cpubind(topology, set, Int32(HWLOC_CPUBIND_THREAD.rawValue)) == 0 else { return nil }
        var units: [Int] = []
        var index = hwloc_bitmap_first(set)
        while index >= 0 {
            units.append(Int(index))
            index = hwloc_bitmap_next(set, index)
        }
        return units
    }

    /// Binds the calling thread to a set of PUs (used to restore a saved binding).
    @discardableResult
    public func bindCurrentThread(toProcessingUnits units: [Int]) -> Bool {
        guard let topology, !isSynthetic, !units.isEmpty else { return false }
        lock.lock()
        defer { lock.unlock() }
        guard let set = hwloc_bitmap_alloc() else { return false }
        defer { hwloc_bitmap_free(set) }
        for unit in units { hwloc_bitmap_set(set, UInt32(unit)) }
        return hwloc_set_cpubind(topology, set, Int32(HWLOC_CPUBIND_THREAD.rawValue)) == 0
    }

    /// The PU the calling thread is running on right now.
    public static func currentProcessingUnit() -> Int { Int(sched_getcpu()) }

    /// A human-readable summary: "1 package, 1 NUMA node, 2 cores, 2 hardware threads; L1 48 KiB ×2, …".
    public var summary: String {
        func plural(_ n: Int, _ word: String) -> String { "\(n) \(word)\(n == 1 ? "" : "s")" }
        var text = "\(plural(packageCount, "package")), \(plural(numaNodeCount, "NUMA node")), "
            + "\(plural(coreCount, "core")), \(plural(processingUnitCount, "hardware thread"))"
        if !caches.isEmpty {
            text += "; " + caches.map { "L\($0.level) \(formatBytes($0.sizeBytes)) ×\($0.count)" }
                .joined(separator: ", ")
        }
        if let processBinding { text += "; this process uses PUs \(processBinding)" }
        if let unavailableReason { text += " (hwloc unavailable: \(unavailableReason))" }
        return text
    }
}

/// Why a topology could not be built.
public struct TopologyError: Error, CustomStringConvertible {
    public let description: String
}

/// A byte count for people: "48 KiB", "1 MiB", "1.3 MiB", "11.8 GiB", "100 bytes" (exact multiples without a
/// decimal).
public func formatBytes(_ bytes: Int) -> String {
    for (size, unit) in [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] where bytes >= size {
        return bytes % size == 0 ? "\(bytes / size) \(unit)" : String(format1: Double(bytes) / Double(size)) + " \(unit)"
    }
    return "\(bytes) bytes"
}

extension String {
    init(format1 value: Double) {
        let tenths = Int((value * 10).rounded())
        self = "\(tenths / 10).\(tenths % 10)"
    }
}

/// A plain pthread mutex (Foundation-free), for the few places that need mutual exclusion outside hot loops.
final class PThreadMutex: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    init() { pthread_mutex_init(mutex, nil) }
    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }
    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
}

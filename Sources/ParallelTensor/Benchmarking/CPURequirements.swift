import CPUFeatures

/// What pgan needs of an x86-64 CPU: AVX2 and FMA, because the kernels are compiled for them. The check itself runs
/// in C before `main` (`Sources/CPUFeatures/cpu_features.c`); this is its message, for tests and for callers that
/// want to say why a machine cannot run pgan.
public enum CPURequirements {
    /// The one-line error for a CPU with these features, or nil when they are enough.
    public static func error(hasAVX2: Bool, hasFMA: Bool) -> String? {
        pgan_cpu_requirement_error(hasAVX2 ? 1 : 0, hasFMA ? 1 : 0).map { String(cString: $0) }
    }
}

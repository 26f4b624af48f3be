import ParallelTensor

/// Where one tensor between a network's layers lives during a pass (docs/ARCHITECTURE.md §4).
enum TensorHome: Equatable {
    /// The caller's memory (the network's input: noise rows, images).
    case external
    /// Kept from the forward to the backward pass, in stored buffer k.
    case stored(Int)
    /// In gradient scratch buffer k (0 or 1): not kept, or recomputed when backward needs it.
    case scratch(Int)
}

/// The memory plan of one network for one kind of pass, derived from its layers by four rules:
/// 1. Reshape and Flatten are views: their output is their input.
/// 2. An element-wise layer (activation, dropout) writes its output over its input unless a backward pass still
///    needs that input: the layer's own (LeakyReLU, BatchNorm) or its producer's (SELU and tanh read their output;
///    a LeakyReLU reads only its output's sign, which a dropout after it keeps where any gradient flows).
/// 3. A training BatchNorm's output that feeds a weighted layer is not stored: it is one multiply-add per element
///    away from its input, so it is computed into a scratch buffer, and again when the weighted layer's backward
///    needs it. That weighted layer writes its input gradient over it (weights' gradient first, input's second).
/// 4. Gradients flow through two scratch buffers: element-wise layers work in place, a weighted layer writes its
///    input gradient into the other one.
/// 5. ... unless a stored buffer is free by then (every backward reader of its tensors has run, and it is not the
///    network's output): the weighted layer then rebuilds its recomputed input there and writes its input gradient
///    over it, and forward rebuilds that input in scratch buffer 1 (the stored buffer is being written meanwhile).
/// Inference (no backward) keeps nothing: every tensor lives in one of two scratch buffers, element-wise layers in
/// place. Sizes are per sample, in floats; an `ActivationArena` allocates them for a number of samples.
struct ActivationPlan {
    enum Mode { case training, inference }

    let layers: [NetworkLayer]
    let shapes: [TensorShape]
    let mode: Mode
    /// The first layer the pass runs (1 when the planner runs a batch-wide first layer itself).
    let firstLayer: Int
    /// Whether backward writes ∂loss/∂input to the caller (`external` gradient), for layer `firstLayer`.
    let inputNeedsGradient: Bool
    /// Per tensor index `firstLayer...layers.count`.
    private(set) var homes: [TensorHome]
    /// Per tensor index: the buffer holding ∂loss/∂tensor in backward (`external`: the caller's).
    private(set) var gradientHomes: [TensorHome]
    /// Tensor index → the BatchNorm layer whose output it is, for tensors recomputed in backward (rule 3).
    private(set) var recomputedBy: [Int: Int] = [:]
    /// Recomputed tensors that backward rebuilds elsewhere than forward wrote them: in a free stored buffer (rule 5).
    private(set) var backwardHomes: [Int: TensorHome] = [:]
    private(set) var storedSizes: [Int] = []
    private(set) var scratchSizes = [0, 0]
    /// Layer index → dropout mask buffer.
    private(set) var maskSlots: [Int: Int] = [:]
    private(set) var maskSizes: [Int] = []

    init(network: Network, mode: Mode, firstLayer: Int, inputNeedsGradient: Bool) {
        layers = network.layers
        shapes = network.shapes
        self.mode = mode
        self.firstLayer = firstLayer
        self.inputNeedsGradient = inputNeedsGradient
        let count = layers.count
        homes = Array(repeating: .external, count: count + 1)
        gradientHomes = Array(repeating: .scratch(0), count: count + 1)
        if mode == .inference {
            planInference()
        } else {
            planTraining()
        }
    }

    func elements(_ tensor: Int) -> Int { shapes[tensor].elementsPerImage }

    /// The layer before tensor `tensor` that is not a view, if any after `firstLayer`.
    private func producer(of tensor: Int) -> Int? {
        var layer = tensor - 1
        while layer >= firstLayer, case .view = layers[layer] { layer -= 1 }
        return layer >= firstLayer ? layer : nil
    }

    private mutating func store(_ tensor: Int) {
        homes[tensor] = .stored(storedSizes.count)
        storedSizes.append(elements(tensor))
    }

    private mutating func planInference() {
        homes[firstLayer] = .external
        for i in firstLayer..<layers.count {
            let output = i + 1
            switch layers[i] {
            case .view, .dropout:
                // Inference dropout is the identity (Keras' training=False).
                homes[output] = homes[i]
            default:
                if !layers[i].isWeighted, case .scratch = homes[i] {
                    homes[output] = homes[i]
                } else {
                    let other = homes[i] == .scratch(0) ? 1 : 0
                    homes[output] = .scratch(other)
                }
            }
            if case .scratch(let k) = homes[output] { scratchSizes[k] = max(scratchSizes[k], elements(output)) }
        }
    }

    private mutating func planTraining() {
        let last = layers.count
        if firstLayer > 0 { store(firstLayer) } else { homes[0] = .external }
        for i in firstLayer..<last {
            let output = i + 1
            switch layers[i] {
            case .view:
                homes[output] = homes[i]
                if let source = recomputedBy[i] { recomputedBy[output] = source }
            case .batchNormalization where feedsWeightedLayer(output) && homes[i] != .external && output != last:
                recomputedBy[output] = i
                homes[output] = .scratch(0)  // which one is decided by the backward walk below
            default:
                if !layers[i].isWeighted && canOverwriteInput(of: i) {
                    homes[output] = homes[i]
                } else {
                    store(output)
                }
            }
            if case .dropout = layers[i] {
                maskSlots[i] = maskSizes.count
                maskSizes.append(elements(i))
            }
        }
        // The network's output is always stored: the caller reads it after the pass (a recomputed or external
        // output cannot happen: rule 3 excludes the last layer, and a view of the input is not a network).
        // Backward walk (rule 4): where each gradient lives, and where each recomputed tensor is rebuilt.
        // Backward walk (rules 4 and 5): where each gradient lives, and where each recomputed tensor is rebuilt.
        let lastReaders = storedLastReaders(), output = homes[last]
        var current = TensorHome.scratch(0)
        gradientHomes[last] = current
        scratchSizes[0] = max(scratchSizes[0], elements(last))
        for i in (firstLayer..<last).reversed() {
            let needsGradient = needsInputGradient(i)
            if layers[i].isWeighted {
                let free = storedSizes.indices.filter {
                    lastReaders[$0] > i && storedSizes[$0] >= elements(i) && .stored($0) != output && .stored($0) != current
                }
                let next: TensorHome = free.min { storedSizes[$0] < storedSizes[$1] }.map { .stored($0) }
                    ?? .scratch(current == .scratch(0) ? 1 : 0)
                if recomputedBy[i] != nil {
                    var tensor = i
                    while let _ = recomputedBy[tensor] {
                        if case .stored = next {
                            homes[tensor] = .scratch(1)
                            backwardHomes[tensor] = next
                        } else {
                            homes[tensor] = next
                        }
                        tensor -= 1
                    }
                    if case .scratch(let k) = homes[i] { scratchSizes[k] = max(scratchSizes[k], elements(i)) }
                }
                current = next
            }
            if needsGradient {
                gradientHomes[i] = (i == 0 && inputNeedsGradient) ? .external : current
                if case .scratch(let k) = gradientHomes[i] { scratchSizes[k] = max(scratchSizes[k], elements(i)) }
            }
        }
    }

    /// Per stored buffer: the lowest layer index whose backward pass reads it (a layer's input or output, as its
    /// `backwardRead` says; a BatchNorm's input, which a weighted layer's recomputation reads), Int.max for none.
    private func storedLastReaders() -> [Int] {
        var lowest = Array(repeating: Int.max, count: storedSizes.count)
        func read(_ tensor: Int, at layer: Int) {
            if case .stored(let k) = homes[tensor] { lowest[k] = min(lowest[k], layer) }
        }
        for j in firstLayer..<layers.count {
            switch layers[j].backwardRead {
            case .input: read(j, at: j)
            case .output, .outputSign: read(j + 1, at: j)
            case .nothing: break
            }
            if layers[j].isWeighted, let source = recomputedBy[j] { read(source, at: j) }
        }
        return lowest
    }

    /// Whether backward must produce ∂loss/∂(input of layer i): when a layer before it has parameters, or the
    /// caller asked for the input's.
    func needsInputGradient(_ i: Int) -> Bool {
        inputNeedsGradient || layers[firstLayer..<i].contains { $0.isWeighted || $0.batchNormalization != nil }
    }

    /// Multiply-adds per sample of layers `range` forward.
    func forwardMultiplyAdds(_ range: Range<Int>) -> Int {
        range.reduce(0) { $0 + layers[$1].multiplyAddsPerSample }
    }

    /// Multiply-adds per sample of layers `range` backward: each weighted layer's weight gradient (unless the network
    /// is frozen) and its input gradient where one is computed (`externalInputGradient`: whether the caller takes
    /// ∂loss/∂input of layer 0). Each costs as much as the layer's forward pass.
    func backwardMultiplyAdds(_ range: Range<Int>, weightGradients: Bool = true, externalInputGradient: Bool = true) -> Int {
        range.reduce(0) { total, i in
            guard layers[i].isWeighted else { return total }
            let work = layers[i].multiplyAddsPerSample
            let inputGradient = needsInputGradient(i) && (i > 0 || externalInputGradient) ? work : 0
            return total + (weightGradients ? work : 0) + inputGradient
        }
    }

    /// True when tensor `tensor` (through views) is the input of a weighted layer.
    private func feedsWeightedLayer(_ tensor: Int) -> Bool {
        var layer = tensor
        while layer < layers.count, case .view = layers[layer] { layer += 1 }
        return layer < layers.count && layers[layer].isWeighted
    }

    /// Rule 2, for element-wise layer i.
    private func canOverwriteInput(of i: Int) -> Bool {
        guard layers[i].backwardRead != .input, case .stored = homes[i] else { return false }
        guard let producer = producer(of: i) else { return true }
        switch layers[producer].backwardRead {
        case .output: return false
        case .outputSign: return layers[i].keepsProducersSignWhereGradientFlows
        case .nothing, .input: return true
        }
    }
}

/// The buffers of one or more `ActivationPlan`s (which then share them, as passes that never overlap) for
/// `capacity` samples: a shard's (the generator in training, whose activations live from its forward pass to its
/// backward pass) or a worker's (passes that run in chunks). Tensors are NHWC, sample after sample.
final class ActivationArena: @unchecked Sendable {
    let capacity: Int
    let stored, scratch, masks: [AlignedBuffer]

    /// `minimumScratch0`: floats per sample scratch buffer 0 holds at least, for a caller's use between passes.
    init(plans: [ActivationPlan], capacity: Int, minimumScratch0: Int) {
        self.capacity = capacity
        let sizes = Self.sizes(plans: plans, minimumScratch0: minimumScratch0)
        stored = sizes.stored.map { AlignedBuffer(count: capacity * $0) }
        scratch = sizes.scratch.map { AlignedBuffer(count: capacity * $0) }
        masks = sizes.masks.map { AlignedBuffer(count: capacity * $0) }
    }

    /// An arena for a pass that runs while `donor`'s owner is idle (`WorkerMemory`): each buffer is the smallest of
    /// `donor`'s that holds it, or a new one where none does. Borrowed buffers hold whatever was last written there.
    init(plans: [ActivationPlan], capacity: Int, borrowing donor: [AlignedBuffer]) {
        self.capacity = capacity
        let sizes = Self.sizes(plans: plans, minimumScratch0: 0)
        var free = donor.sorted { $0.count < $1.count }
        func take(_ count: Int) -> AlignedBuffer {
            guard let index = free.firstIndex(where: { $0.count >= count }) else { return AlignedBuffer(count: count) }
            return free.remove(at: index)
        }
        // Largest first, so a large need is not left without the one donor buffer that holds it.
        let needs = sizes.stored + sizes.scratch + sizes.masks
        var taken = [AlignedBuffer?](repeating: nil, count: needs.count)
        for position in needs.indices.sorted(by: { needs[$0] > needs[$1] }) { taken[position] = take(capacity * needs[position]) }
        let ordered = taken.map { $0! }
        stored = Array(ordered[0..<sizes.stored.count])
        scratch = Array(ordered[sizes.stored.count..<(sizes.stored.count + sizes.scratch.count)])
        masks = Array(ordered[(sizes.stored.count + sizes.scratch.count)...])
    }

    /// The buffer a home names (not `external`, the caller's).
    func pointer(_ home: TensorHome) -> UnsafeMutablePointer<Float> {
        switch home {
        case .external: preconditionFailure("an external tensor is the caller's, not the arena's")
        case .stored(let k): stored[k].pointer
        case .scratch(let k): scratch[k].pointer
        }
    }

    /// Every buffer of the arena.
    var buffers: [AlignedBuffer] { stored + scratch + masks }

    static func sizes(plans: [ActivationPlan], minimumScratch0: Int) -> (stored: [Int], scratch: [Int], masks: [Int]) {
        func widest(_ lists: [[Int]]) -> [Int] {
            (0..<(lists.map(\.count).max() ?? 0)).map { k in lists.map { k < $0.count ? $0[k] : 0 }.max()! }
        }
        var scratch = widest(plans.map(\.scratchSizes))
        scratch[0] = max(scratch[0], minimumScratch0)
        return (widest(plans.map(\.storedSizes)), scratch, widest(plans.map(\.maskSizes)))
    }

    /// Floats one sample needs in an arena of these plans.
    static func elementsPerSample(plans: [ActivationPlan], minimumScratch0: Int) -> Int {
        let sizes = sizes(plans: plans, minimumScratch0: minimumScratch0)
        return sizes.stored.reduce(0, +) + sizes.scratch.reduce(0, +) + sizes.masks.reduce(0, +)
    }
}

/// Per worker, memory another pass may use while its owner is idle: a trainer's kernel workspaces and the buffers of
/// its discriminator's activation arenas, which only its steps use, lent to the classifier that measures samples
/// between steps (so measuring adds no 16 × 0.4 MB of arenas and workspaces on 16 threads).
struct WorkerMemory {
    /// One per worker of the executor.
    let workspaces: [KernelWorkspace]
    /// Per worker (possibly fewer than the workers: the rest allocate), buffers no other worker uses.
    let buffers: [[AlignedBuffer]]
}

/// One pass's view of an arena: tensor and gradient pointers, and the forward and backward passes over a range of
/// layers for `n` samples (rows 0..<n of every buffer).
///
/// The samples may form consecutive groups that a BatchNorm normalises apart, each with its own batch statistics
/// (`SampleGroup`: PyTorch's step judges the reals and the fakes as two batches); every other layer runs over all n
/// rows at once, so the GEMMs see one larger batch.
struct ActivationPass {
    /// Consecutive samples with their own BatchNorm state (per layer index, nil for other layers) and the minibatch
    /// index of their first sample (dropout masks are addressed by sample).
    struct SampleGroup {
        let count: Int
        let norms: [BatchNormBatch?]
        let firstSample: Int
    }

    let plan: ActivationPlan
    let arena: ActivationArena
    /// The network's input rows (tensor `plan.firstLayer` when external), and where ∂loss/∂input goes.
    let input: UnsafeMutablePointer<Float>?
    let inputGradient: UnsafeMutablePointer<Float>?
    /// The groups, in row order; one group of all n samples unless a caller splits them.
    let groups: [SampleGroup]
    let context: LayerContext
    let n: Int

    /// One group of n samples with BatchNorm state `norms` (per layer index), starting at `context.firstSample`.
    init(plan: ActivationPlan, arena: ActivationArena, input: UnsafeMutablePointer<Float>?,
         inputGradient: UnsafeMutablePointer<Float>?, norms: [BatchNormBatch?], context: LayerContext, n: Int) {
        self.init(plan: plan, arena: arena, input: input, inputGradient: inputGradient,
                  groups: [SampleGroup(count: n, norms: norms, firstSample: context.firstSample)], context: context)
    }

    init(plan: ActivationPlan, arena: ActivationArena, input: UnsafeMutablePointer<Float>?,
         inputGradient: UnsafeMutablePointer<Float>?, groups: [SampleGroup], context: LayerContext) {
        self.plan = plan
        self.arena = arena
        self.input = input
        self.inputGradient = inputGradient
        self.groups = groups
        self.context = context
        n = groups.reduce(0) { $0 + $1.count }
    }

    /// `body(group, firstRow)` for every group, firstRow being its first sample's row in the pass.
    func forEachGroup(_ body: (SampleGroup, Int) -> Void) {
        var row = 0
        for group in groups {
            body(group, row)
            row += group.count
        }
    }

    private func pointer(_ home: TensorHome, external: UnsafeMutablePointer<Float>?) -> UnsafeMutablePointer<Float>? {
        home == .external ? external : arena.pointer(home)
    }

    /// Tensor `index` as forward writes it (and as a caller reads the output).
    func tensor(_ index: Int) -> UnsafeMutablePointer<Float> { pointer(plan.homes[index], external: input)! }

    /// Tensor `index` as backward reads it: where a recomputed tensor is rebuilt (rule 5), else `tensor`.
    private func backwardTensor(_ index: Int) -> UnsafeMutablePointer<Float> {
        pointer(plan.backwardHomes[index] ?? plan.homes[index], external: input)!
    }

    func gradient(_ index: Int) -> UnsafeMutablePointer<Float>? {
        pointer(plan.gradientHomes[index], external: inputGradient)
    }

    func mask(_ layer: Int) -> UnsafeMutablePointer<Float>? { plan.maskSlots[layer].map { arena.masks[$0].pointer } }

    /// Layers `range` forward. A training BatchNorm must have its minibatch statistics finished.
    func forward(_ range: Range<Int>) {
        for i in range {
            if plan.mode == .inference, case .dropout = plan.layers[i] { continue }
            forward(layer: i)
        }
    }

    /// Layer i forward: over all rows, or group by group for a BatchNorm (each with its own statistics) and dropout
    /// (masks addressed by each group's samples). `rebuilding`: a recomputation in backward, into the tensors'
    /// backward homes.
    private func forward(layer i: Int, rebuilding: Bool = false) {
        let tensor = rebuilding ? backwardTensor : self.tensor
        let layer = plan.layers[i]
        let grouped: Bool
        switch layer {
        case .batchNormalization, .dropout: grouped = groups.count > 1
        default: grouped = false
        }
        guard grouped else {
            layer.forward(n: n, input: tensor(i), output: tensor(i + 1), inputShape: plan.shapes[i], mask: mask(i),
                          norm: groups[0].norms[i], context: context(firstSample: groups[0].firstSample))
            return
        }
        let inputSize = plan.shapes[i].elementsPerImage, outputSize = plan.shapes[i + 1].elementsPerImage
        forEachGroup { group, row in
            layer.forward(n: group.count, input: tensor(i) + row * inputSize, output: tensor(i + 1) + row * outputSize,
                          inputShape: plan.shapes[i], mask: mask(i).map { $0 + row * inputSize }, norm: group.norms[i],
                          context: context(firstSample: group.firstSample))
        }
    }

    /// The layer context with another first sample (a group's).
    private func context(firstSample: Int) -> LayerContext {
        let c = context
        return LayerContext(parameters: c.parameters, gradients: c.gradients, accumulate: c.accumulate, random: c.random,
                            step: c.step, phase: c.phase, firstSample: firstSample, workspace: c.workspace)
    }

    /// Layers `range` backward, last first, from ∂loss/∂output of the range's last layer. A BatchNorm in the range
    /// must have its minibatch gradient sums finished.
    func backward(_ range: Range<Int>) {
        for i in range.reversed() {
            let layer = plan.layers[i]
            if case .view = layer { continue }
            if let normalization = layer.batchNormalization {
                let pixels = plan.shapes[i].height * plan.shapes[i].width, size = plan.shapes[i].elementsPerImage
                forEachGroup { group, row in
                    normalization.backward(rows: group.count * pixels, input: tensor(i) + row * size,
                                           outputGradient: gradient(i + 1)! + row * size,
                                           inputGradient: gradient(i)! + row * size, parameters: context.parameters,
                                           batch: group.norms[i]!)
                }
                continue
            }
            if let source = plan.recomputedBy[i] {
                // Rule 3: the BatchNorm output this layer read in forward, computed again from its stored input.
                forward(layer: source, rebuilding: true)
            }
            let needsGradient = plan.needsInputGradient(i)
            layer.backward(n: n, input: backwardTensor(i), output: backwardTensor(i + 1), outputGradient: gradient(i + 1)!,
                           inputGradient: needsGradient ? gradient(i) : nil, inputShape: plan.shapes[i],
                           mask: mask(i), context: context)
        }
    }

    /// This shard's sums for the training BatchNorm at layer `layer` (forward: of its input), each group's into its
    /// own state.
    func accumulateStatistics(layer: Int, shard: Int) {
        let pixels = plan.shapes[layer].height * plan.shapes[layer].width, size = plan.shapes[layer].elementsPerImage
        forEachGroup { group, row in
            plan.layers[layer].batchNormalization!.accumulateStatistics(
                shard: shard, rows: group.count * pixels, input: tensor(layer) + row * size, batch: group.norms[layer]!)
        }
    }

    /// This shard's Σdy and Σdy·x̂ for the BatchNorm at layer `layer` (backward), each group's into its own state.
    func accumulateGradientSums(layer: Int, shard: Int) {
        let pixels = plan.shapes[layer].height * plan.shapes[layer].width, size = plan.shapes[layer].elementsPerImage
        forEachGroup { group, row in
            plan.layers[layer].batchNormalization!.accumulateGradientSums(
                shard: shard, rows: group.count * pixels, input: tensor(layer) + row * size,
                outputGradient: gradient(layer + 1)! + row * size, batch: group.norms[layer]!)
        }
    }
}

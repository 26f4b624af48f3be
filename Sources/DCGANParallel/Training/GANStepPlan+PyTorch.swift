import ParallelTensor

/// The step of PyTorch's DCGAN example (`examples/dcgan/main.py`), for models with `ModelConventions.pytorch`:
///
///     fake = netG(noise)                                   # G in training mode, once per step
///     errD_real = BCE(netD(real), 1); errD_real.backward() # D's BatchNorm: the reals' statistics
///     errD_fake = BCE(netD(fake.detach()), 0); errD_fake.backward()  # … and the fakes' own
///     optimizerD.step()
///     errG = BCE(netD(fake), 1); errG.backward()           # the same fakes, through the updated D
///     optimizerG.step()
///
/// Each loss is a mean over its B samples. Unlike the Keras step, the discriminator may hold BatchNorms, so every
/// pass of either network runs over whole shards in per-shard memory and stops at each BatchNorm for its reduction
/// (`StagedPasses`); everything else (the shards, the tree every sum goes through, the updates) is the Keras step's.
extension GANStepPlan {
    func appendPyTorchStep(to work: inout PhasedWork, step: UInt64) {
        let owned = self.owned, image = discriminator.inputElements, codings = generator.inputElements
        let generatorLayers = generator.layers.count, discriminatorLayers = discriminator.layers.count
        let computed = ownedSamples.count
        let judging = discriminatorTraining, generating = generatorTraining
        let allOfD = 0..<discriminatorLayers, allOfG = 0..<generatorLayers

        work.parallel("noise", iterations: owned.count) { [self] index, _ in
            for i in shardRanges[owned.lowerBound + index] {
                random.normal(step: step, stream: .generatorNoise, index: i, count: codings,
                              into: generatorNoise.pointer + i * codings)
            }
        }

        var passes = StagedPasses(owned: owned)
        // fake = netG(noise): the generator's activations stay in its shard arenas until its backward pass.
        stagedForward(&passes, label: "G", network: generator, plan: generating, range: allOfG, norms: [trainingNorms],
                      work: { computed * generating.forwardMultiplyAdds($0) }) { [self] shard, worker in
            generatorPass(shard: shard, worker: worker, step: step)
        }
        passes.shard("fakes out") { [self] shard, worker in
            let range = shardRanges[shard]
            let fakes = generatorPass(shard: shard, worker: worker, step: step).tensor(generatorLayers)
            (discriminatorPhaseFakes.pointer + range.lowerBound * image).update(from: fakes, count: range.count * image)
        }

        // D on the reals and on the fakes in one pass of 2n samples per shard (reals first, as the example runs them):
        // every layer runs over both at once, but each BatchNorm normalises the two groups apart, with their own
        // batch statistics, as the example's two forward passes do. D's first layer needs no input gradient here
        // (nothing trains through the data).
        passes.shard("D inputs") { [self] shard, worker in
            let range = shardRanges[shard], index = shard - owned.lowerBound
            clearUnwritten(discriminatorUnwritten, of: discriminatorShardPointers, shard: shard)
            let judged = discriminatorInputs[index].pointer
            judged.update(from: realBatch.pointer + range.lowerBound * image, count: range.count * image)
            (judged + range.count * image).update(from: generatorPass(shard: shard, worker: worker, step: step)
                .tensor(generatorLayers), count: range.count * image)
        }
        let both = [discriminatorRealNorms, discriminatorFakeNorms]
        let judge = { [self] (shard: Int, worker: Int) -> ActivationPass in
            let range = shardRanges[shard], index = shard - owned.lowerBound
            return discriminatorShardPass(
                shard: shard, worker: worker, step: step, input: discriminatorInputs[index].pointer, inputGradient: nil,
                groups: [.init(count: range.count, norms: discriminatorRealNorms, firstSample: batch + range.lowerBound),
                         .init(count: range.count, norms: discriminatorFakeNorms, firstSample: range.lowerBound)],
                gradients: discriminatorShardPointers[index], phase: .discriminatorStep)
        }
        stagedForward(&passes, label: "D on reals and fakes", network: discriminator, plan: judging, range: allOfD,
                      norms: both, work: { 2 * computed * judging.forwardMultiplyAdds($0) }, pass: judge)
        passes.shard("D loss") { [self] shard, worker in
            let pass = judge(shard, worker), range = shardRanges[shard]
            for (isReal, row) in [(true, 0), (false, range.count)] {
                let offset = range.lowerBound + (isReal ? batch : 0)
                loss(pass: pass, rows: row..<(row + range.count), label: isReal ? realLabelRow : fakeLabelRow,
                     logits: discriminatorLogits.pointer + offset, losses: discriminatorLosses.pointer + offset)
            }
        }
        stagedBackward(&passes, label: "D on reals and fakes", plan: judging, range: allOfD, norms: both,
                       work: { 2 * computed * judging.backwardMultiplyAdds($0, externalInputGradient: false) },
                       pass: judge)
        passes.emit(to: &work)

        // optimizerD.step(): the shards' sum, then the BatchNorms' gamma/beta gradients of both passes, then Adam.
        let discriminatorCount = discriminator.parameters.count
        let discriminatorSlices = Self.sliceCount(of: discriminatorCount)
        if reducer.isDistributed {
            appendDistributedSum(to: &work, network: "D", count: discriminatorCount, local: discriminatorShardPointers)
        } else {
            work.parallel("D all-reduce", iterations: discriminatorSlices) { [self] index, _ in
                reducer.sumOwnBlocks(discriminatorShardPointers, range: Self.slice(index, of: discriminatorCount))
            }
        }
        work.serial("D BatchNorm gradients") { [self] in
            discriminator.writeNormalizationGradients(into: discriminatorShardPointers[0], norms: discriminatorRealNorms)
            discriminator.writeNormalizationGradients(into: discriminatorShardPointers[0], norms: discriminatorFakeNorms,
                                                      accumulate: true)
        }
        work.parallel("D optimizer", iterations: discriminatorSlices) { [self] index, _ in
            discriminatorOptimizer.apply(Self.slice(index, of: discriminatorCount),
                                         parameters: discriminator.parameters.pointer,
                                         gradients: discriminatorShardPointers[0])
        }
        work.parallel("D weight packing", iterations: discriminatorPacking.panelCount) { [self] panel, _ in
            discriminatorPacking.packPanel(panel)
        }

        // errG: the same fakes through the updated D (in training mode, frozen), into the generator's backward pass.
        var generatorPhase = StagedPasses(owned: owned)
        let frozenPass = { [self] (shard: Int, worker: Int) -> ActivationPass in
            let generating = generatorPass(shard: shard, worker: worker, step: step)
            return discriminatorShardPass(
                shard: shard, worker: worker, step: step, input: generating.tensor(generatorLayers),
                inputGradient: generating.gradient(generatorLayers),
                groups: [.init(count: shardRanges[shard].count, norms: discriminatorRealNorms,
                               firstSample: shardRanges[shard].lowerBound)],
                gradients: nil, phase: .generatorStep)
        }
        stagedForward(&generatorPhase, label: "frozen D", network: discriminator, plan: judging, range: allOfD,
                      norms: [discriminatorRealNorms], work: { computed * judging.forwardMultiplyAdds($0) },
                      pass: frozenPass)
        generatorPhase.shard("G loss") { [self] shard, worker in
            let offset = shardRanges[shard].lowerBound
            clearUnwritten(generatorUnwritten, of: generatorShardPointers, shard: shard)
            let pass = frozenPass(shard, worker)
            loss(pass: pass, rows: 0..<pass.n, label: realLabelRow, logits: generatorLogits.pointer + offset,
                 losses: generatorLosses.pointer + offset)
        }
        stagedBackward(&generatorPhase, label: "frozen D", plan: judging, range: allOfD, norms: [discriminatorRealNorms],
                       work: { computed * judging.backwardMultiplyAdds($0, weightGradients: false) }, pass: frozenPass)
        stagedBackward(&generatorPhase, label: "G", plan: generating, range: allOfG, norms: [trainingNorms],
                       work: { computed * generating.backwardMultiplyAdds($0) }) { [self] shard, worker in
            generatorPass(shard: shard, worker: worker, step: step)
        }
        generatorPhase.emit(to: &work)
        appendGeneratorUpdate(to: &work, firstLayerMultiplyAdds: 0)
    }

    /// A shard's discriminator pass in training mode, in its shard arena, on the rows of `groups` at `input`; weight
    /// gradients into `gradients` (nil: frozen).
    func discriminatorShardPass(shard: Int, worker: Int, step: UInt64, input: UnsafeMutablePointer<Float>,
                                inputGradient: UnsafeMutablePointer<Float>?, groups: [ActivationPass.SampleGroup],
                                gradients: UnsafeMutablePointer<Float>?, phase: GANPhase) -> ActivationPass {
        ActivationPass(plan: discriminatorTraining, arena: discriminatorShardArenas[shard - owned.lowerBound],
                       input: input, inputGradient: inputGradient, groups: groups,
                       context: context(discriminator, gradients: gradients, step: step, phase: phase,
                                        firstSample: groups[0].firstSample, worker: worker))
    }

    /// The mean binary cross-entropy of a pass's logits in `rows` against `label` (one entry of it per sample):
    /// per-sample losses and logits to `losses` and `logits`, ∂(loss/B)/∂logit to those rows of the pass's last
    /// gradient.
    func loss(pass: ActivationPass, rows: Range<Int>, label: AlignedBuffer, logits: UnsafeMutablePointer<Float>,
              losses: UnsafeMutablePointer<Float>) {
        let last = pass.plan.layers.count
        BinaryCrossEntropy.withLogits(logits: pass.tensor(last) + rows.lowerBound, labels: label.pointer,
                                      count: rows.count, losses: losses,
                                      logitGradients: pass.gradient(last)! + rows.lowerBound,
                                      gradientScale: 1 / Float(batch))
        logits.update(from: pass.tensor(last) + rows.lowerBound, count: rows.count)
    }

    /// Forward over layers `range` of every owned shard, stopping at each BatchNorm for its minibatch statistics
    /// (which also move its running statistics): one set of BatchNorm state per sample group of the pass, finished in
    /// that order. `work(stage)`: a stage's multiply-adds, for `pgan bench --phases`.
    func stagedForward(_ passes: inout StagedPasses, label: String, network: Network, plan: ActivationPlan,
                       range: Range<Int>, norms: [[BatchNormBatch?]], work: @escaping (Range<Int>) -> Int,
                       pass: @escaping (_ shard: Int, _ worker: Int) -> ActivationPass) {
        var start = range.lowerBound
        for normalization in range where plan.layers[normalization].batchNormalization != nil {
            let stage = start..<normalization
            passes.shard("\(label) forward", multiplyAdds: work(stage)) { shard, worker in
                let shardPass = pass(shard, worker)
                shardPass.forward(stage)
                shardPass.accumulateStatistics(layer: normalization, shard: shard)
            }
            passes.serial("\(label) BatchNorm statistics") { [self] in
                let shape = plan.shapes[normalization]
                for set in norms {
                    plan.layers[normalization].batchNormalization!.finishStatistics(
                        totalRows: batch * shape.height * shape.width, parameters: network.parameters.pointer,
                        state: network.state.pointer, batch: set[normalization]!)
                }
            }
            start = normalization
        }
        let stage = start..<range.upperBound
        passes.shard("\(label) forward", multiplyAdds: work(stage)) { shard, worker in pass(shard, worker).forward(stage) }
    }

    /// Backward over layers `range` of every owned shard, last layer first, from the gradient of the range's output,
    /// stopping below each BatchNorm for its minibatch gradient sums.
    func stagedBackward(_ passes: inout StagedPasses, label: String, plan: ActivationPlan, range: Range<Int>,
                        norms: [[BatchNormBatch?]], work: @escaping (Range<Int>) -> Int,
                        pass: @escaping (_ shard: Int, _ worker: Int) -> ActivationPass) {
        var end = range.upperBound
        for normalization in range.reversed() where plan.layers[normalization].batchNormalization != nil {
            let stage = (normalization + 1)..<end
            passes.shard("\(label) backward", multiplyAdds: work(stage)) { shard, worker in
                let shardPass = pass(shard, worker)
                shardPass.backward(stage)
                shardPass.accumulateGradientSums(layer: normalization, shard: shard)
            }
            passes.serial("\(label) BatchNorm gradient sums") { [self] in
                let shape = plan.shapes[normalization]
                for set in norms {
                    plan.layers[normalization].batchNormalization!.finishGradientSums(
                        totalRows: batch * shape.height * shape.width, batch: set[normalization]!)
                }
            }
            end = normalization + 1
        }
        let stage = range.lowerBound..<end
        passes.shard("\(label) backward", multiplyAdds: work(stage)) { shard, worker in pass(shard, worker).backward(stage) }
    }
}

/// Work on every owned shard separated by serial reductions, written in the order a shard does it; `emit` turns
/// each run of per-shard pieces into one parallel phase (one item per shard, the pieces in order), so a shard goes
/// from one reduction to the next without waiting for the others in between.
struct StagedPasses {
    private enum Piece {
        case shard(label: String, multiplyAdds: Int, body: (_ shard: Int, _ worker: Int) -> Void)
        case serial(label: String, body: () -> Void)
    }

    let owned: Range<Int>
    private var pieces: [Piece] = []

    init(owned: Range<Int>) { self.owned = owned }

    mutating func shard(_ label: String, multiplyAdds: Int = 0, _ body: @escaping (_ shard: Int, _ worker: Int) -> Void) {
        pieces.append(.shard(label: label, multiplyAdds: multiplyAdds, body: body))
    }

    mutating func serial(_ label: String, _ body: @escaping () -> Void) {
        pieces.append(.serial(label: label, body: body))
    }

    func emit(to work: inout PhasedWork) {
        var labels: [String] = [], bodies: [(Int, Int) -> Void] = [], multiplyAdds = 0
        let owned = self.owned
        func flush() {
            guard !bodies.isEmpty else { return }
            let run = bodies
            var unique: [String] = []
            for label in labels where unique.last != label { unique.append(label) }
            work.parallel(unique.joined(separator: ", "), iterations: owned.count, multiplyAdds: multiplyAdds) { index, worker in
                for body in run { body(owned.lowerBound + index, worker) }
            }
            (labels, bodies, multiplyAdds) = ([], [], 0)
        }
        for piece in pieces {
            switch piece {
            case .shard(let label, let work, let body):
                labels.append(label)
                bodies.append(body)
                multiplyAdds += work
            case .serial(let label, let body):
                flush()
                work.serial(label, body)
            }
        }
        flush()
    }
}

import ParallelTensor

extension GANStepPlan {
    /// Appends the phases of one training step (see the rules on `GANStepPlan`). The real images must be in
    /// `realBatch`, and the optimizers' `beginStep` and `generator.prepareInference(norms: inferenceNorms)` done
    /// before the first phase runs.
    func append(to work: inout PhasedWork, step: UInt64) {
        if generator.model.conventions == .pytorch {
            appendPyTorchStep(to: &work, step: step)
            return
        }
        let owned = self.owned, image = discriminator.inputElements, codings = generator.inputElements
        let last = generator.layers.count
        let normalizations = generator.batchNormalizationLayers
        let firstLayer = self.firstLayer
        // Multiply-adds per sample, for the GFLOP/s of each phase in `pgan bench --phases`.
        let firstLayerWork = firstLayer?.multiplyAddsPerSample ?? 0
        let judging = discriminatorTraining, generating = generatorTraining

        work.parallel("noise for both phases", iterations: owned.count) { [self] index, _ in
            for i in shardRanges[owned.lowerBound + index] {
                random.normal(step: step, stream: .discriminatorNoise, index: i, count: codings,
                              into: discriminatorNoise.pointer + i * codings)
                random.normal(step: step, stream: .generatorNoise, index: i, count: codings,
                              into: generatorNoise.pointer + i * codings)
            }
        }
        if let firstLayer {
            // The G weights do not change before the G optimizer at the end of the step, so both phases' first
            // layer runs here. The D phase's outputs go to a buffer of the shards' arenas that the G phase only
            // writes after the D phase (`firstLayerParking`).
            let slices = (firstLayer.outputSize + Self.firstLayerForwardColumns - 1) / Self.firstLayerForwardColumns
            work.parallel("G first layer forward, both phases, by column slices", iterations: slices,
                          multiplyAdds: 2 * ownedSamples.count * firstLayerWork) { [self] slice, worker in
                firstLayerForwardSlice(slice, layer: firstLayer, noise: discriminatorNoise.pointer,
                                       workspace: workspaces[worker]) { generatorArenas[$0 - owned.lowerBound].pointer(firstLayerParking) }
                firstLayerForwardSlice(slice, layer: firstLayer, noise: generatorNoise.pointer,
                                       workspace: workspaces[worker]) { firstLayerOutputs[$0 - owned.lowerBound] }
            }
        }

        // D phase. Shard s owns fakes F and the reals B + F for its range F of 0..<B, so every shard makes the same
        // number of fakes; its samples go through the discriminator a chunk at a time, fakes first, gradients
        // accumulating.
        let computed = ownedSamples.count  // the samples this process computes, for the phases' multiply-adds
        let dPhaseWork = computed * generatorInference.forwardMultiplyAdds(generatorInference.firstLayer..<last)
            + 2 * computed * (judging.forwardMultiplyAdds(0..<judging.layers.count)
                           + judging.backwardMultiplyAdds(0..<judging.layers.count, externalInputGradient: false))
        work.parallel("D phase: G inference, D forward+backward on fakes and reals", iterations: owned.count,
                      multiplyAdds: dPhaseWork) { [self] index, worker in
            let shard = owned.lowerBound + index
            let own = shardRanges[shard], gradients = discriminatorShardPointers[index]
            clearUnwritten(discriminatorUnwritten, of: discriminatorShardPointers, shard: shard)
            let inputRow = firstLayer != nil ? generator.shapes[1].elementsPerImage : codings
            let inputs = firstLayer != nil ? generatorArenas[index].pointer(firstLayerParking)
                : discriminatorNoise.pointer + own.lowerBound * codings
            for chunk in chunks(of: own) {
                let images = generatorInferencePass(plan: generatorInference,
                                                    input: inputs + (chunk.lowerBound - own.lowerBound) * inputRow,
                                                    n: chunk.count, worker: worker)
                let fakes = discriminatorPhaseFakes.pointer + chunk.lowerBound * image
                fakes.update(from: images, count: chunk.count * image)
                discriminatorPass(input: fakes, samples: chunk, label: labels.fake, phase: .discriminatorStep,
                                  totalBatch: 2 * batch, logits: discriminatorLogits, losses: discriminatorLosses,
                                  worker: worker, gradients: gradients, accumulate: chunk.lowerBound != own.lowerBound,
                                  inputGradient: nil, step: step)
            }
            for chunk in chunks(of: own) {
                discriminatorPass(input: realBatch.pointer + chunk.lowerBound * image,
                                  samples: (batch + chunk.lowerBound)..<(batch + chunk.upperBound),
                                  label: labels.real, phase: .discriminatorStep, totalBatch: 2 * batch, logits: discriminatorLogits,
                                  losses: discriminatorLosses, worker: worker, gradients: gradients, accumulate: true,
                                  inputGradient: nil, step: step)
            }
        }

        // D's update: each slice of its gradients summed over shards, then stepped by the optimizer, then its
        // weights packed for the frozen D of the G phase. Both fill G-phase stages that do not read D. Across
        // processes the sum has two more steps first: the blocks' sums, then the exchange between ranks.
        let discriminatorCount = discriminator.parameters.count
        let discriminatorSlices = Self.sliceCount(of: discriminatorCount)
        let distributed = reducer.isDistributed
        if distributed {
            appendDistributedSum(to: &work, network: "D", count: discriminatorCount, local: discriminatorShardPointers)
        }
        let discriminatorUpdate = PhaseItems(count: discriminatorSlices) { [self] index, _ in
            let range = Self.slice(index, of: discriminatorCount)
            if !distributed { reducer.sumOwnBlocks(discriminatorShardPointers, range: range) }
            discriminatorOptimizer.apply(range, parameters: discriminator.parameters.pointer,
                                         gradients: discriminatorShardPointers[0])
        }
        let discriminatorPackingItems = PhaseItems(count: discriminatorPacking.panelCount) { [self] panel, _ in
            discriminatorPacking.packPanel(panel)
        }

        // G phase, forward: one stage per BatchNorm, each ending in that BatchNorm's statistics. The stage after the
        // last BatchNorm runs to the image and on through the frozen D and back (`finalStage`).
        let start = generatorTraining.firstLayer
        var pending = [discriminatorUpdate, discriminatorPackingItems]
        var stageStart = start
        for (k, normalization) in normalizations.enumerated() {
            let range = stageStart..<normalization
            let label = k == 0 ? "G forward to BatchNorm \(k) statistics" : "G forward stage \(k)"
            appendShardPhase(to: &work, label: label, multiplyAdds: computed * generating.forwardMultiplyAdds(range),
                             leading: k == 0 ? pending.removeFirst() : nil,
                             trailing: k == 1 ? pending.removeFirst() : nil) { [self] shard, worker in
                let pass = generatorPass(shard: shard, worker: worker, step: step)
                pass.forward(range)
                pass.accumulateStatistics(layer: normalization, shard: shard)
            }
            work.serial("G BatchNorm \(k) statistics") { [self] in
                let rows = batch * generator.shapes[normalization].height * generator.shapes[normalization].width
                generator.layers[normalization].batchNormalization!.finishStatistics(
                    totalRows: rows, parameters: generator.parameters.pointer, state: generator.state.pointer,
                    batch: trainingNorms[normalization]!)
            }
            stageStart = normalization
        }
        // D must be updated and packed before the frozen D reads it.
        for items in pending {
            work.parallel(items === discriminatorUpdate ? "D all-reduce+optimizer" : "D weight packing",
                          iterations: items.count, items.body)
        }

        let finalForward = stageStart..<last
        let finalBackward = (normalizations.last.map { $0 + 1 } ?? start)..<last
        let finalWork = computed * (generating.forwardMultiplyAdds(finalForward)
                                 + judging.forwardMultiplyAdds(0..<judging.layers.count)
                                 + judging.backwardMultiplyAdds(0..<judging.layers.count, weightGradients: false)
                                 + generating.backwardMultiplyAdds(finalBackward))
        work.parallel("G forward to the image, frozen D forward+backward, G backward to the last BatchNorm",
                      iterations: owned.count, multiplyAdds: finalWork) { [self] index, worker in
            let shard = owned.lowerBound + index
            let range = shardRanges[shard], pass = generatorPass(shard: shard, worker: worker, step: step)
            clearUnwritten(generatorUnwritten, of: generatorShardPointers, shard: shard)
            pass.forward(finalForward)
            let images = pass.tensor(last), imageGradients = pass.gradient(last)!
            for chunk in chunks(of: range) {
                let offset = (chunk.lowerBound - range.lowerBound) * image
                discriminatorPass(input: images + offset, samples: chunk, label: labels.generatorTarget,
                                  phase: .generatorStep, totalBatch: batch, logits: generatorLogits,
                                  losses: generatorLosses, worker: worker, gradients: nil, accumulate: false,
                                  inputGradient: imageGradients + offset, step: step)
            }
            pass.backward(finalBackward)
            if let normalization = normalizations.last { pass.accumulateGradientSums(layer: normalization, shard: shard) }
        }

        // G phase, backward: from each BatchNorm down to the one before it (its gradient sums), then to the first
        // layer the shards run.
        for k in normalizations.indices.reversed() {
            let normalization = normalizations[k]
            work.serial("G BatchNorm \(k) gradient sums") { [self] in
                let rows = batch * generator.shapes[normalization].height * generator.shapes[normalization].width
                generator.layers[normalization].batchNormalization!.finishGradientSums(
                    totalRows: rows, batch: trainingNorms[normalization]!)
            }
            let below = k > 0 ? normalizations[k - 1] : nil
            let range = (below.map { $0 + 1 } ?? start)..<(normalization + 1)
            let label = below == nil ? "G backward through BatchNorm \(k)" : "G backward to BatchNorm \(k - 1)"
            work.parallel(label, iterations: owned.count,
                          multiplyAdds: computed * generating.backwardMultiplyAdds(range)) { [self] index, worker in
                let shard = owned.lowerBound + index
                let pass = generatorPass(shard: shard, worker: worker, step: step)
                pass.backward(range)
                if let below { pass.accumulateGradientSums(layer: below, shard: shard) }
            }
        }

        appendGeneratorUpdate(to: &work, firstLayerMultiplyAdds: computed * firstLayerWork)
    }

    /// G's update: the shards' gradients all-reduced beside the batch-wide first layer's gradient (when there is one),
    /// the BatchNorms' gamma/beta gradients written, the optimizer step, the weights packed for the next step. Across
    /// processes, each rank's blocks are summed here (the first layer's per block) and exchanged after.
    func appendGeneratorUpdate(to work: inout PhasedWork, firstLayerMultiplyAdds: Int) {
        let firstLayer = self.firstLayer, distributed = reducer.isDistributed
        let generatorSharded = generator.shardedGradientCount
        let reduceSlices = Self.sliceCount(of: generatorSharded)
        let firstLayerSlices = firstLayer.map {
            ($0.outputSize + Self.firstLayerGradientColumns - 1) / Self.firstLayerGradientColumns
        } ?? 0
        let blocks = reducer.ownBlocks
        let firstLayerLabel = firstLayer == nil ? "" : distributed ? " | G first layer weight gradient per block"
            : " | G first layer weight gradient"
        work.parallel((distributed ? "G block sums" : "G all-reduce") + firstLayerLabel,
                      iterations: reduceSlices + firstLayerSlices * blocks.count,
                      multiplyAdds: firstLayerMultiplyAdds) { [self] index, worker in
            if index < reduceSlices {
                reducer.sumOwnBlocks(generatorShardPointers, range: Self.slice(index, of: generatorSharded))
            } else if let firstLayer {
                let item = index - reduceSlices
                firstLayerGradientSlice(item % firstLayerSlices, layer: firstLayer, block: blocks[item / firstLayerSlices])
            }
        }
        if distributed {
            work.serial("G exchange between ranks") { [self] in
                reducer.exchangeRoots(generatorShardPointers, count: generator.parameters.count)
            }
        }
        work.serial("G BatchNorm gradients") { [self] in
            generator.writeNormalizationGradients(into: generatorShardPointers[0], norms: trainingNorms)
        }
        let generatorCount = generator.parameters.count
        work.parallel(average == nil ? "G optimizer" : "G optimizer, moving average",
                      iterations: Self.sliceCount(of: generatorCount)) { [self] slice, _ in
            let range = Self.slice(slice, of: generatorCount)
            generatorOptimizer.apply(range, parameters: generator.parameters.pointer, gradients: generatorShardPointers[0])
            average?.update(range, from: generator.parameters.pointer)
        }
        if let average {
            work.serial("G moving average of the BatchNorm statistics") { [self] in
                average.updateState(from: generator.state.pointer)
            }
        }
        work.parallel("G weight packing",
                      iterations: generatorPacking.panelCount) { [self] panel, _ in generatorPacking.packPanel(panel) }
    }

    /// Across processes: a phase summing each of the rank's aligned blocks (when one has more than one shard), then the
    /// exchange of the blocks' roots, after which `local[0]` holds the total on every rank.
    func appendDistributedSum(to work: inout PhasedWork, network: String, count: Int,
                                      local: [UnsafeMutablePointer<Float>]) {
        if reducer.ownBlocks.contains(where: { $0.count > 1 }) {
            work.parallel("\(network) block sums", iterations: Self.sliceCount(of: count)) { [self] index, _ in
                reducer.sumOwnBlocks(local, range: Self.slice(index, of: count))
            }
        }
        work.serial("\(network) exchange between ranks") { [self] in reducer.exchangeRoots(local, count: count) }
    }

    /// Slices of `ShardReduction.sliceLength` elements a vector of `count` is cut into, for parallel sums and updates.
    static func sliceCount(of count: Int) -> Int {
        (count + ShardReduction.sliceLength - 1) / ShardReduction.sliceLength
    }

    /// Elements of slice `index` of a vector of `count` (`ShardReduction.sliceLength` each).
    static func slice(_ index: Int, of count: Int) -> Range<Int> {
        let start = index * ShardReduction.sliceLength
        return start..<min(start + ShardReduction.sliceLength, count)
    }

    /// A phase of one item per owned shard, with independent items before them (`leading`: long ones, claimed first) or
    /// after them (`trailing`: short ones that fill in behind).
    private func appendShardPhase(to work: inout PhasedWork, label: String, multiplyAdds: Int, leading: PhaseItems?,
                                  trailing: PhaseItems?, _ body: @escaping (_ shard: Int, _ worker: Int) -> Void) {
        let owned = self.owned, shards = owned.count, before = leading?.count ?? 0, after = trailing?.count ?? 0
        let fullLabel = label + (leading != nil ? " | D all-reduce+optimizer" : "") + (trailing != nil ? " | D weight packing" : "")
        work.parallel(fullLabel, iterations: before + shards + after, multiplyAdds: multiplyAdds) { index, worker in
            if index < before {
                leading!.body(index, worker)
            } else if index < before + shards {
                body(owned.lowerBound + index - before, worker)
            } else {
                trailing!.body(index - before - shards, worker)
            }
        }
    }
}

/// Independent parallel work that the planner places into a phase beside other work.
final class PhaseItems {
    let count: Int
    let body: (_ index: Int, _ worker: Int) -> Void

    init(count: Int, _ body: @escaping (_ index: Int, _ worker: Int) -> Void) {
        self.count = count
        self.body = body
    }
}

#if canImport(FoundationEssentials)
import FoundationEssentials
import Glibc
#else
import Foundation
#endif
import ParallelTensor

/// How good a generator's images are, by a classifier's features (the protocol is the README's "Measuring samples"):
/// the Fréchet distance to real images of the class it was trained on, the share of images the classifier puts in that
/// class, and how spread out they are against real ones.
public struct SampleQuality: Sendable, Equatable {
    /// Fréchet distance between the generated and the reference real images' features.
    public let frechetDistance: Double
    /// Fraction of generated images classified as the run's class; nil for a run on every class.
    public let classRate: Double?
    /// Mean pairwise feature distance of the generated images over that of the reference real images (1: as varied as
    /// real images; near 0: one image again and again), over the first `QualityProbe.diversityImages` of each.
    public let diversity: Double
}

/// The real side of the measurement, computed once: `count` reference images of the class (a fixed draw from the
/// data), their feature statistics, and the real-against-real floor (the same distance between the reference images
/// and as many other real ones).
public final class QualityProbe: @unchecked Sendable {
    public let classifier: Classifier
    public let count: Int
    public let targetClass: Int?
    public let imagesPerPass: Int
    let reference: FrechetDistance.Statistics
    let referenceSpread: Double
    /// The distance between two disjoint draws of real images: what a perfect generator would score.
    public let realFloor: Double
    /// How many real images each side of the floor had (fewer than `count` when the class has under 2·count images).
    public let floorImages: Int
    /// The noise seed of the generated images: fixed, so a checkpoint always gets the same figure.
    public static let noiseSeed: UInt64 = 2026

    /// `realImages`: the images the run trained on (already of its class); `targetClass`: that class, when the run
    /// trained on one class of a data set the classifier knows.
    ///
    /// `imagesPerPass`: images held and classified at a time, real or generated; the figures do not depend on it (each
    /// image's features are its own, bit for bit), the memory does: 1 000 images of 64×64 RGB at once are 49 MB.
    public init(classifier: Classifier, realImages: ImageDataset, targetClass: Int?, count: Int,
                executor: ShardedExecutor, imagesPerPass: Int = 100) throws {
        guard realImages.imageShape == classifier.imageShape else {
            throw DataError(path: realImages.source, problem: "holds \(realImages.height)×\(realImages.width)×\(realImages.channels) images; the classifier (\(classifier.identifier)) reads \(classifier.imageShape.height)×\(classifier.imageShape.width)×\(classifier.imageShape.channels): give --classifier trained on such images")
        }
        guard count >= 2, realImages.count >= 4 else {
            throw DataError(path: realImages.source, problem: "measuring needs at least 2 generated and 4 real images (have \(realImages.count) real, asked for \(count))")
        }
        precondition(imagesPerPass > 0, "imagesPerPass must be positive")
        self.classifier = classifier
        self.count = count
        self.targetClass = targetClass
        self.imagesPerPass = imagesPerPass
        let order = CounterRandom(seed: 0).permutation(count: realImages.count, epoch: 0)
        let referenceCount = min(count, realImages.count / 2)
        floorImages = min(referenceCount, realImages.count - referenceCount)
        func features(_ indices: ArraySlice<Int>) -> [Float] {
            Self.classify(classifier, count: indices.count, imagesPerPass: imagesPerPass, executor: executor) { range, pixels in
                let size = realImages.elementsPerImage
                for (row, index) in indices.dropFirst(range.lowerBound).prefix(range.count).enumerated() {
                    realImages.copyImage(index, to: pixels + row * size)
                }
            }.features
        }
        let referenceFeatures = features(order[0..<referenceCount])
        let dimension = ClassifierModel.featureCount
        reference = FrechetDistance.Statistics(features: referenceFeatures, count: referenceCount, dimension: dimension)
        referenceSpread = Self.meanPairwiseDistance(referenceFeatures, count: referenceCount, dimension: dimension)
        let other = features(order[referenceCount..<(referenceCount + floorImages)])
        realFloor = FrechetDistance.distance(
            reference, FrechetDistance.Statistics(features: other, count: floorImages, dimension: dimension))
    }

    /// Measures `count` generated images (count × image elements, in [−1, 1]).
    public func measure(images: [Float], executor: ShardedExecutor) -> SampleQuality {
        let generated = images.count / classifier.network.inputElements
        let (features, predictions) = images.withUnsafeBufferPointer {
            classifier.evaluate(images: $0.baseAddress!, count: generated, executor: executor)
        }
        return quality(features: features, predictions: predictions)
    }

    /// Measures a trainer's generator on `count` images from the fixed noise, made and classified `imagesPerPass` at
    /// a time.
    public func measure(_ trainer: GANTrainer) -> SampleQuality {
        let (features, predictions) = Self.classify(classifier, count: count, imagesPerPass: imagesPerPass,
                                                    executor: trainer.executor, memory: trainer.idleWorkerMemory) { range, pixels in
            let images = trainer.generate(count: range.count, noiseSeed: Self.noiseSeed, firstIndex: range.lowerBound)
            images.withUnsafeBufferPointer { pixels.update(from: $0.baseAddress!, count: $0.count) }
        }
        return quality(features: features, predictions: predictions)
    }

    /// The classifier's features and classes of `count` images, `imagesPerPass` at a time: `fill(range, pixels)`
    /// writes images `range` (of 0..<count) to `pixels`.
    static func classify(_ classifier: Classifier, count: Int, imagesPerPass: Int, executor: ShardedExecutor,
                         memory: WorkerMemory? = nil,
                         fill: (Range<Int>, UnsafeMutablePointer<Float>) -> Void) -> (features: [Float], predictions: [Int]) {
        let pixels = AlignedBuffer(count: min(count, imagesPerPass) * classifier.network.inputElements)
        var features: [Float] = [], predictions: [Int] = []
        features.reserveCapacity(count * ClassifierModel.featureCount)
        predictions.reserveCapacity(count)
        var start = 0
        while start < count {
            let range = start..<min(start + imagesPerPass, count)
            fill(range, pixels.pointer)
            let part = classifier.evaluate(images: pixels.pointer, count: range.count, executor: executor, memory: memory)
            features += part.features
            predictions += part.predictions
            start = range.upperBound
        }
        return (features, predictions)
    }

    func quality(features: [Float], predictions: [Int]) -> SampleQuality {
        let generated = predictions.count
        let dimension = ClassifierModel.featureCount
        let statistics = FrechetDistance.Statistics(features: features, count: generated, dimension: dimension)
        let rate = targetClass.map { target in Double(predictions.filter { $0 == target }.count) / Double(generated) }
        let spread = Self.meanPairwiseDistance(features, count: generated, dimension: dimension)
        return SampleQuality(frechetDistance: FrechetDistance.distance(statistics, reference), classRate: rate,
                             diversity: referenceSpread > 0 ? spread / referenceSpread : 0)
    }

    /// Images the diversity looks at, at most: its pairs grow with the square of the count.
    public static let diversityImages = 2000

    /// The mean distance between the feature vectors of the first `diversityImages` images, over all their pairs.
    static func meanPairwiseDistance(_ features: [Float], count: Int, dimension: Int) -> Double {
        let count = min(count, diversityImages)
        var total = 0.0
        for i in 0..<count {
            for j in (i + 1)..<count {
                var squared = 0.0
                for k in 0..<dimension {
                    let d = Double(features[i * dimension + k]) - Double(features[j * dimension + k])
                    squared += d * d
                }
                total += squared.squareRoot()
            }
        }
        return count > 1 ? total / Double(count * (count - 1) / 2) : 0
    }
}

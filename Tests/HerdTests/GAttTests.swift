import XCTest
import Foundation
import Herd

/// Ghost Attention's data and measure: the demonstrations keep the
/// instruction on the first turn only and learn only the last answer; the
/// world's annotator says whether an answer keeps a standing instruction.
final class GAttTests: XCTestCase {
    let dialogue = InstructedDialogue(id: "g", instruction: "(end with !)", turns: ["Capitals: dog", "Say twice: cat", "Letter after a?"])

    func testDemonstrationsKeepTheInstructionOnTheFirstTurnAndLearnOnlyTheLastAnswer() throws {
        let demos = GhostAttention.demonstrations(dialogue, answers: ["DOG!", "cat cat!", "b!"])
        XCTAssertEqual(demos.map(\.id), ["g-turn1", "g-turn2", "g-turn3"])
        XCTAssertEqual(demos[0].dialogue.map(\.content), ["(end with !) Capitals: dog", "DOG!"])
        let last = demos[2]
        XCTAssertEqual(last.loss, .lastAnswer)
        XCTAssertEqual(last.dialogue.filter { $0.role == .user }.map(\.content), ["(end with !) Capitals: dog", "Say twice: cat", "Letter after a?"])
        XCTAssertEqual(last.dialogue.filter { $0.role == .assistant }.map(\.content), ["DOG!", "cat cat!", "b!"])
        // The loss: only the last answer's tokens and its end, none of the earlier answers'.
        let tok = ByteTokenizer()
        let (tokens, learned) = try last.encoded(tokenizer: tok)
        let kept = zip(tokens, learned).filter(\.1).map(\.0)
        XCTAssertEqual(tok.decode(kept), " b! " + ChatFormat.textEOS)
        let all = try Demonstration(id: "x", dialogue: last.dialogue).encoded(tokenizer: tok)
        XCTAssertEqual(tok.decode(zip(all.tokens, all.learned).filter(\.1).map(\.0)).filter { $0 == "!" }.count, 3,
                       "without GAtt's mask every answer would be learned")
    }

    func testTheWorldsAnnotatorSaysWhetherTheInstructionIsKept() {
        let a = ScriptedAnnotator(noise: 0)
        func rate(_ d: [ChatMessage], _ answer: String) -> AnnotatorProtocol.RateAnswer {
            a.rate(.init(id: "r", dialogue: d, response: answer))
        }
        let d = [ChatMessage(.user, dialogue.instructed(0)), ChatMessage(.assistant, "DOG!"), ChatMessage(.user, dialogue.turns[1])]
        XCTAssertEqual(rate(d, "cat cat!").instruction, true)
        XCTAssertEqual(rate(d, "cat cat!").helpfulness, 7)
        XCTAssertEqual(rate(d, "cat cat").instruction, false)
        XCTAssertEqual(rate(d, "cat cat").helpfulness, 5, "right but not keeping the instruction costs 2 points")
        XCTAssertEqual(rate(d, "dog dog!").helpfulness, 1)
        let plain = [ChatMessage(.user, "Say twice: cat")]
        XCTAssertNil(rate(plain, "cat cat").instruction)
        XCTAssertEqual(rate(plain, "cat cat").helpfulness, 7)
        for i in StandingInstruction.allCases {
            XCTAssertEqual(i.undo(i.apply("DOG")), "DOG")
            XCTAssertEqual(StandingInstruction.split(i.attach(to: "Capitals: dog")).0, i)
        }
    }
}

// SPDX-License-Identifier: MIT
// A Chainlink-style price feed (AggregatorV3Interface) for the local chain: ETH quoted in a
// currency, which lpnode reads for prices such as -pricePerUnit 0.5USD. Its owner sets the
// answer (tests move it; on Arbitrum One Chainlink's oracles do).
pragma solidity ^0.8.9;

contract PriceFeed {
    address public owner;
    uint8 public decimals;
    string public description;
    int256 private answer;
    uint80 private roundId;
    uint256 private updatedAt;

    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);

    constructor(uint8 _decimals, string memory _description, int256 _answer) {
        owner = msg.sender;
        decimals = _decimals;
        description = _description;
        _update(_answer);
    }

    function updateAnswer(int256 _answer) external {
        require(msg.sender == owner, "caller must be the owner");
        _update(_answer);
    }

    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        return (roundId, answer, updatedAt, updatedAt, roundId);
    }

    function _update(int256 _answer) internal {
        answer = _answer;
        roundId += 1;
        updatedAt = block.timestamp;
        emit AnswerUpdated(_answer, roundId, block.timestamp);
    }
}

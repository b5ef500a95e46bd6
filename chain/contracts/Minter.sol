// SPDX-License-Identifier: MIT
// Mints each round's reward: a share of the mintable tokens in proportion to the caller's stake.
pragma solidity ^0.8.9;

import "./Manager.sol";

interface IMintableToken {
    function totalSupply() external view returns (uint256);
    function mint(address _to, uint256 _amount) external;
    function transfer(address _to, uint256 _amount) external returns (bool);
}

contract Minter is Manager {
    // Percentages over MathUtils.PERC_DIVISOR, as the protocol's.
    uint256 public constant PERC_DIVISOR = 1000000;

    uint256 public inflation;
    uint256 public inflationChange;
    uint256 public targetBondingRate;
    uint256 public currentMintableTokens;
    uint256 public currentMintedTokens;

    event SetCurrentRewardTokens(uint256 currentMintableTokens, uint256 currentInflation);

    modifier onlyBondingManager() {
        require(msg.sender == registered("BondingManager"), "caller must be BondingManager");
        _;
    }

    modifier onlyRoundsManager() {
        require(msg.sender == registered("RoundsManager"), "caller must be RoundsManager");
        _;
    }

    constructor(address _controller, uint256 _inflation, uint256 _inflationChange, uint256 _targetBondingRate)
        Manager(_controller)
    {
        require(_inflation <= PERC_DIVISOR, "_inflation is invalid percentage");
        inflation = _inflation;
        inflationChange = _inflationChange;
        targetBondingRate = _targetBondingRate;
    }

    // The reward for a stake of _fracNum out of _fracDenom, minted to this contract (which holds
    // all bonded LPT).
    function createReward(uint256 _fracNum, uint256 _fracDenom)
        external
        onlyBondingManager
        whenSystemNotPaused
        returns (uint256)
    {
        uint256 mintAmount = _fracDenom == 0 ? 0 : (currentMintableTokens * _fracNum) / _fracDenom;
        require(currentMintedTokens + mintAmount <= currentMintableTokens, "minted tokens cannot exceed mintable tokens");
        currentMintedTokens += mintAmount;
        IMintableToken(registered("LivepeerToken")).mint(address(this), mintAmount);
        return mintAmount;
    }

    function trustedTransferTokens(address _to, uint256 _amount) external onlyBondingManager whenSystemNotPaused {
        IMintableToken(registered("LivepeerToken")).transfer(_to, _amount);
    }

    function setCurrentRewardTokens() external onlyRoundsManager whenSystemNotPaused {
        uint256 supply = IMintableToken(registered("LivepeerToken")).totalSupply();
        currentMintableTokens = (supply * inflation) / PERC_DIVISOR;
        currentMintedTokens = 0;
        emit SetCurrentRewardTokens(currentMintableTokens, inflation);
    }
}

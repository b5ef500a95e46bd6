// SPDX-License-Identifier: MIT
// Bonding, the active set and reward, with the protocol's function signatures, return layouts,
// events and revert strings for what lpnode uses. Delegator bookkeeping is reduced to what
// those need: a reward raises the transcoder's stake (as if its stake were all its own).
pragma solidity ^0.8.9;

import "./Manager.sol";

interface IRounds {
    function currentRound() external view returns (uint256);
    function currentRoundInitialized() external view returns (bool);
    function currentRoundLocked() external view returns (bool);
}

interface IMinter {
    function createReward(uint256 _fracNum, uint256 _fracDenom) external returns (uint256);
}

interface IToken {
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

contract BondingManager is Manager {
    uint256 public constant PERC_DIVISOR = 1000000;
    uint256 private constant MAX_FUTURE_ROUND = type(uint256).max;

    enum TranscoderStatus {
        NotRegistered,
        Registered
    }

    struct Transcoder {
        uint256 lastRewardRound;
        uint256 rewardCut;
        uint256 feeShare;
        uint256 lastActiveStakeUpdateRound;
        uint256 activationRound;
        uint256 deactivationRound;
        uint256 activeCumulativeRewards;
        uint256 cumulativeRewards;
        uint256 cumulativeFees;
        uint256 lastFeeRound;
    }

    struct Delegator {
        uint256 bondedAmount;
        uint256 fees;
        address delegateAddress;
        uint256 delegatedAmount;
        uint256 startRound;
        uint256 lastClaimRound;
        uint256 nextUnbondingLockId;
    }

    struct EarningsPool {
        uint256 totalStake;
        uint256 transcoderRewardCut;
        uint256 transcoderFeeShare;
        uint256 cumulativeRewardFactor;
        uint256 cumulativeFeeFactor;
    }

    uint256 public unbondingPeriod;
    uint256 public currentRoundTotalActiveStake;
    uint256 public nextRoundTotalActiveStake;
    mapping(address => address) public transcoderToRewardCaller;

    mapping(address => Transcoder) private transcoders;
    mapping(address => Delegator) private delegators;
    mapping(address => mapping(uint256 => EarningsPool)) private earningsPools;
    // The transcoder pool (= the active set from the next round), sorted by stake, largest first.
    address[] private pool;
    uint256 private poolMaxSize;

    event TranscoderUpdate(address indexed transcoder, uint256 rewardCut, uint256 feeShare);
    event TranscoderActivated(address indexed transcoder, uint256 activationRound);
    event TranscoderDeactivated(address indexed transcoder, uint256 deactivationRound);
    event Reward(address indexed transcoder, uint256 amount);
    event Bond(
        address indexed newDelegate,
        address indexed oldDelegate,
        address indexed delegator,
        uint256 additionalAmount,
        uint256 bondedAmount
    );
    event RewardCallerSet(address indexed transcoder, address indexed rewardCaller);

    modifier onlyRoundsManager() {
        require(msg.sender == registered("RoundsManager"), "caller must be RoundsManager");
        _;
    }

    modifier currentRoundInitialized() {
        require(rounds().currentRoundInitialized(), "current round is not initialized");
        _;
    }

    constructor(address _controller) Manager(_controller) {}

    function setUnbondingPeriod(uint64 _unbondingPeriod) external onlyControllerOwner {
        require(_unbondingPeriod > 0, "unbonding period cannot be 0");
        unbondingPeriod = _unbondingPeriod;
        emit ParameterUpdate("unbondingPeriod");
    }

    function setNumActiveTranscoders(uint256 _numActiveTranscoders) external onlyControllerOwner {
        require(_numActiveTranscoders >= pool.length, "cannot shrink the pool below its size");
        poolMaxSize = _numActiveTranscoders;
        emit ParameterUpdate("numActiveTranscoders");
    }

    function bond(uint256 _amount, address _to) external {
        bondWithHint(_amount, _to, address(0), address(0), address(0), address(0));
    }

    function bondWithHint(
        uint256 _amount,
        address _to,
        address,
        address,
        address,
        address
    ) public whenSystemNotPaused currentRoundInitialized {
        Delegator storage del = delegators[msg.sender];
        address oldDelegate = del.delegateAddress;
        require(
            !isRegisteredTranscoder(msg.sender) || _to == msg.sender,
            "registered transcoders can't delegate towards other addresses"
        );
        require(_amount > 0 || (oldDelegate != address(0) && oldDelegate != _to), "delegation amount must be greater than 0");
        if (oldDelegate != address(0) && oldDelegate != _to) {
            _changeStake(oldDelegate, delegators[oldDelegate].delegatedAmount - del.bondedAmount);
            _changeStake(_to, delegators[_to].delegatedAmount + del.bondedAmount);
        }
        if (del.startRound == 0 || oldDelegate != _to) {
            del.startRound = rounds().currentRound() + 1;
        }
        del.delegateAddress = _to;
        del.bondedAmount += _amount;
        _changeStake(_to, delegators[_to].delegatedAmount + _amount);
        if (_amount > 0) {
            require(IToken(registered("LivepeerToken")).transferFrom(msg.sender, registered("Minter"), _amount));
        }
        emit Bond(_to, oldDelegate, msg.sender, _amount, del.bondedAmount);
    }

    function transcoder(uint256 _rewardCut, uint256 _feeShare) external {
        transcoderWithHint(_rewardCut, _feeShare, address(0), address(0));
    }

    function transcoderWithHint(uint256 _rewardCut, uint256 _feeShare, address, address)
        public
        whenSystemNotPaused
        currentRoundInitialized
    {
        require(!rounds().currentRoundLocked(), "can't update transcoder params, current round is locked");
        require(_rewardCut <= PERC_DIVISOR, "invalid rewardCut percentage");
        require(_feeShare <= PERC_DIVISOR, "invalid feeShare percentage");
        require(isRegisteredTranscoder(msg.sender), "transcoder must be registered");
        Transcoder storage t = transcoders[msg.sender];
        uint256 currentRound = rounds().currentRound();
        require(
            !isActiveTranscoder(msg.sender) || t.lastRewardRound == currentRound,
            "caller can't be active or must have already called reward for the current round"
        );
        t.rewardCut = _rewardCut;
        t.feeShare = _feeShare;
        if (!_inPool(msg.sender)) {
            _tryToJoinActiveSet(msg.sender, delegators[msg.sender].delegatedAmount, currentRound + 1);
        }
        emit TranscoderUpdate(msg.sender, _rewardCut, _feeShare);
    }

    function reward() external {
        _reward(msg.sender);
    }

    function rewardWithHint(address, address) external {
        _reward(msg.sender);
    }

    // LIP-118: a transcoder names an account that may call reward on its behalf.
    function setRewardCaller(address _rewardCaller) external whenSystemNotPaused {
        transcoderToRewardCaller[msg.sender] = _rewardCaller;
        emit RewardCallerSet(msg.sender, _rewardCaller);
    }

    function rewardForTranscoder(address _transcoder) external {
        rewardForTranscoderWithHint(_transcoder, address(0), address(0));
    }

    function rewardForTranscoderWithHint(address _transcoder, address, address) public {
        require(
            _transcoder != address(0) && transcoderToRewardCaller[_transcoder] == msg.sender,
            "caller must be the transcoder's reward caller"
        );
        _reward(_transcoder);
    }

    function _reward(address _transcoder) internal whenSystemNotPaused currentRoundInitialized {
        uint256 currentRound = rounds().currentRound();
        require(isActiveTranscoder(_transcoder), "caller must be an active transcoder");
        Transcoder storage t = transcoders[_transcoder];
        require(t.lastRewardRound != currentRound, "caller has already called reward for the current round");

        EarningsPool storage earnings = earningsPools[_transcoder][currentRound];
        if (t.lastActiveStakeUpdateRound < currentRound) {
            earnings.totalStake = earningsPools[_transcoder][t.lastActiveStakeUpdateRound].totalStake;
        }
        earnings.transcoderRewardCut = t.rewardCut;
        earnings.transcoderFeeShare = t.feeShare;
        uint256 rewardTokens = IMinter(registered("Minter")).createReward(earnings.totalStake, currentRoundTotalActiveStake);
        t.lastRewardRound = currentRound;
        t.cumulativeRewards += rewardTokens;
        t.activeCumulativeRewards += rewardTokens;
        delegators[_transcoder].bondedAmount += rewardTokens;
        _changeStake(_transcoder, delegators[_transcoder].delegatedAmount + rewardTokens);
        emit Reward(_transcoder, rewardTokens);
    }

    // A redeemed winning ticket's fees for its recipient (the protocol's checks and strings;
    // the fee split between transcoder and delegators is left out, as delegators are).
    function updateTranscoderWithFees(address _transcoder, uint256 _fees, uint256 _round)
        external
        whenSystemNotPaused
    {
        require(msg.sender == registered("TicketBroker"), "caller must be TicketBroker");
        require(isRegisteredTranscoder(_transcoder), "transcoder must be registered");
        Transcoder storage t = transcoders[_transcoder];
        t.cumulativeFees += _fees;
        t.lastFeeRound = rounds().currentRound();
        _round;
    }

    function setCurrentRoundTotalActiveStake() external onlyRoundsManager {
        currentRoundTotalActiveStake = nextRoundTotalActiveStake;
    }

    // Views

    function getTranscoder(address _transcoder)
        public
        view
        returns (
            uint256 lastRewardRound,
            uint256 rewardCut,
            uint256 feeShare,
            uint256 lastActiveStakeUpdateRound,
            uint256 activationRound,
            uint256 deactivationRound,
            uint256 activeCumulativeRewards,
            uint256 cumulativeRewards,
            uint256 cumulativeFees,
            uint256 lastFeeRound
        )
    {
        Transcoder storage t = transcoders[_transcoder];
        return (
            t.lastRewardRound,
            t.rewardCut,
            t.feeShare,
            t.lastActiveStakeUpdateRound,
            t.activationRound,
            t.deactivationRound,
            t.activeCumulativeRewards,
            t.cumulativeRewards,
            t.cumulativeFees,
            t.lastFeeRound
        );
    }

    function getTranscoderEarningsPoolForRound(address _transcoder, uint256 _round)
        public
        view
        returns (
            uint256 totalStake,
            uint256 transcoderRewardCut,
            uint256 transcoderFeeShare,
            uint256 cumulativeRewardFactor,
            uint256 cumulativeFeeFactor
        )
    {
        EarningsPool storage e = earningsPools[_transcoder][_round];
        return (e.totalStake, e.transcoderRewardCut, e.transcoderFeeShare, e.cumulativeRewardFactor, e.cumulativeFeeFactor);
    }

    function getDelegator(address _delegator)
        public
        view
        returns (
            uint256 bondedAmount,
            uint256 fees,
            address delegateAddress,
            uint256 delegatedAmount,
            uint256 startRound,
            uint256 lastClaimRound,
            uint256 nextUnbondingLockId
        )
    {
        Delegator storage d = delegators[_delegator];
        return (d.bondedAmount, d.fees, d.delegateAddress, d.delegatedAmount, d.startRound, d.lastClaimRound, d.nextUnbondingLockId);
    }

    function transcoderStatus(address _transcoder) public view returns (TranscoderStatus) {
        return isRegisteredTranscoder(_transcoder) ? TranscoderStatus.Registered : TranscoderStatus.NotRegistered;
    }

    function isActiveTranscoder(address _transcoder) public view returns (bool) {
        Transcoder storage t = transcoders[_transcoder];
        uint256 currentRound = rounds().currentRound();
        return t.activationRound != 0 && t.activationRound <= currentRound && currentRound < t.deactivationRound;
    }

    function isRegisteredTranscoder(address _transcoder) public view returns (bool) {
        Delegator storage d = delegators[_transcoder];
        return d.delegateAddress == _transcoder && d.bondedAmount > 0;
    }

    function transcoderTotalStake(address _transcoder) public view returns (uint256) {
        return delegators[_transcoder].delegatedAmount;
    }

    function getTotalBonded() public view returns (uint256) {
        return currentRoundTotalActiveStake;
    }

    function getTranscoderPoolMaxSize() public view returns (uint256) {
        return poolMaxSize;
    }

    function getTranscoderPoolSize() public view returns (uint256) {
        return pool.length;
    }

    function getFirstTranscoderInPool() public view returns (address) {
        return pool.length == 0 ? address(0) : pool[0];
    }

    function getNextTranscoderInPool(address _transcoder) public view returns (address) {
        for (uint256 i = 0; i + 1 < pool.length; i++) {
            if (pool[i] == _transcoder) {
                return pool[i + 1];
            }
        }
        return address(0);
    }

    // Internals

    function rounds() internal view returns (IRounds) {
        return IRounds(registered("RoundsManager"));
    }

    function _inPool(address _transcoder) internal view returns (bool) {
        for (uint256 i = 0; i < pool.length; i++) {
            if (pool[i] == _transcoder) {
                return true;
            }
        }
        return false;
    }

    // A delegate's stake becomes `_stake`; in the pool it takes effect from the next round.
    function _changeStake(address _delegate, uint256 _stake) internal {
        uint256 old = delegators[_delegate].delegatedAmount;
        delegators[_delegate].delegatedAmount = _stake;
        if (!_inPool(_delegate)) {
            return;
        }
        nextRoundTotalActiveStake = nextRoundTotalActiveStake + _stake - old;
        _setNextRoundStake(_delegate, _stake);
        _resort(_delegate);
    }

    function _setNextRoundStake(address _transcoder, uint256 _stake) internal {
        Transcoder storage t = transcoders[_transcoder];
        uint256 nextRound = rounds().currentRound() + 1;
        // The stake of the rounds in between is the last one set.
        if (t.lastActiveStakeUpdateRound < nextRound) {
            earningsPools[_transcoder][rounds().currentRound()].totalStake =
                earningsPools[_transcoder][t.lastActiveStakeUpdateRound].totalStake;
        }
        earningsPools[_transcoder][nextRound].totalStake = _stake;
        t.lastActiveStakeUpdateRound = nextRound;
    }

    function _tryToJoinActiveSet(address _transcoder, uint256 _stake, uint256 _activationRound) internal {
        if (pool.length == poolMaxSize) {
            if (poolMaxSize == 0) {
                return;
            }
            address last = pool[pool.length - 1];
            uint256 lastStake = delegators[last].delegatedAmount;
            if (_stake <= lastStake) {
                return;
            }
            pool.pop();
            transcoders[last].deactivationRound = _activationRound;
            nextRoundTotalActiveStake -= lastStake;
            emit TranscoderDeactivated(last, _activationRound);
        }
        pool.push(_transcoder);
        _resort(_transcoder);
        Transcoder storage t = transcoders[_transcoder];
        t.activationRound = _activationRound;
        t.deactivationRound = MAX_FUTURE_ROUND;
        nextRoundTotalActiveStake += _stake;
        _setNextRoundStake(_transcoder, _stake);
        emit TranscoderActivated(_transcoder, _activationRound);
    }

    function _resort(address _transcoder) internal {
        uint256 i = 0;
        while (pool[i] != _transcoder) {
            i++;
        }
        while (i > 0 && delegators[pool[i - 1]].delegatedAmount < delegators[pool[i]].delegatedAmount) {
            (pool[i - 1], pool[i]) = (pool[i], pool[i - 1]);
            i--;
        }
        while (i + 1 < pool.length && delegators[pool[i + 1]].delegatedAmount > delegators[pool[i]].delegatedAmount) {
            (pool[i + 1], pool[i]) = (pool[i], pool[i + 1]);
            i++;
        }
    }
}

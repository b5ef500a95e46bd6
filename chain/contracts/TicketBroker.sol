// SPDX-License-Identifier: MIT
// Probabilistic micropayments: senders' deposits and reserves, winning ticket redemption, with
// the protocol's function signatures, return layouts, events and revert strings, and
// redeemWinningTicket's checks in the protocol's order (including protocol#657: a ticket the
// deposit and reserve cannot cover reverts and stays unused). The ETH stays in this contract
// (the protocol keeps it in the Minter): nothing lpnode reads depends on where it is.
pragma solidity ^0.8.9;

import "./Manager.sol";

interface ITicketRounds {
    function currentRound() external view returns (uint256);
    function currentRoundInitialized() external view returns (bool);
    function blockHashForRound(uint256 _round) external view returns (bytes32);
}

interface ITicketBonding {
    function updateTranscoderWithFees(address _transcoder, uint256 _fees, uint256 _round) external;
    function isActiveTranscoder(address _transcoder) external view returns (bool);
    function getTranscoderPoolSize() external view returns (uint256);
}

contract TicketBroker is Manager {
    struct Ticket {
        address recipient;
        address sender;
        uint256 faceValue;
        uint256 winProb;
        uint256 senderNonce;
        bytes32 recipientRandHash;
        bytes auxData;
    }

    struct Sender {
        uint256 deposit;
        uint256 withdrawRound;
    }

    struct ReserveInfo {
        uint256 fundsRemaining;
        uint256 claimedInCurrentRound;
    }

    struct Reserve {
        uint256 funds;
        mapping(uint256 => uint256) claimedForRound;
        mapping(uint256 => mapping(address => uint256)) claimedByAddress;
    }

    uint256 public unlockPeriod;
    uint256 public ticketValidityPeriod;
    mapping(bytes32 => bool) public usedTickets;
    mapping(address => Sender) internal senders;
    mapping(address => Reserve) internal reserves;

    event DepositFunded(address indexed sender, uint256 amount);
    event WinningTicketRedeemed(
        address indexed sender,
        address indexed recipient,
        uint256 faceValue,
        uint256 winProb,
        uint256 senderNonce,
        uint256 recipientRand,
        bytes auxData
    );
    event WinningTicketTransfer(address indexed sender, address indexed recipient, uint256 amount);
    event Unlock(address indexed sender, uint256 startRound, uint256 endRound);
    event UnlockCancelled(address indexed sender);
    event Withdrawal(address indexed sender, uint256 deposit, uint256 reserve);
    event ReserveFunded(address indexed reserveHolder, uint256 amount);
    event ReserveClaimed(address indexed reserveHolder, address claimant, uint256 amount);

    modifier currentRoundInitialized() {
        require(rounds().currentRoundInitialized(), "current round is not initialized");
        _;
    }

    constructor(address _controller) Manager(_controller) {}

    // Parameters

    function setUnlockPeriod(uint256 _unlockPeriod) external onlyControllerOwner {
        unlockPeriod = _unlockPeriod;
        emit ParameterUpdate("unlockPeriod");
    }

    function setTicketValidityPeriod(uint256 _ticketValidityPeriod) external onlyControllerOwner {
        require(_ticketValidityPeriod > 0, "ticketValidityPeriod must be greater than 0");
        ticketValidityPeriod = _ticketValidityPeriod;
        emit ParameterUpdate("ticketValidityPeriod");
    }

    // Funding

    function fundDeposit() external payable whenSystemNotPaused {
        _fundDeposit(msg.sender, msg.value);
    }

    function fundReserve() external payable whenSystemNotPaused {
        _fundReserve(msg.sender, msg.value);
    }

    function fundDepositAndReserve(uint256 _depositAmount, uint256 _reserveAmount) external payable {
        fundDepositAndReserveFor(msg.sender, _depositAmount, _reserveAmount);
    }

    function fundDepositAndReserveFor(address _addr, uint256 _depositAmount, uint256 _reserveAmount)
        public
        payable
        whenSystemNotPaused
    {
        require(msg.value == _depositAmount + _reserveAmount, "msg.value does not equal sum of deposit amount and reserve amount");
        _fundDeposit(_addr, _depositAmount);
        _fundReserve(_addr, _reserveAmount);
    }

    function _fundDeposit(address _addr, uint256 _amount) internal {
        Sender storage s = senders[_addr];
        s.deposit += _amount;
        if (_isUnlockInProgress(s) && msg.sender == _addr) {
            s.withdrawRound = 0;
            emit UnlockCancelled(_addr);
        }
        emit DepositFunded(_addr, _amount);
    }

    function _fundReserve(address _addr, uint256 _amount) internal {
        Sender storage s = senders[_addr];
        reserves[_addr].funds += _amount;
        if (_isUnlockInProgress(s) && msg.sender == _addr) {
            s.withdrawRound = 0;
            emit UnlockCancelled(_addr);
        }
        emit ReserveFunded(_addr, _amount);
    }

    // Redemption

    function redeemWinningTicket(Ticket memory _ticket, bytes memory _sig, uint256 _recipientRand)
        public
        whenSystemNotPaused
        currentRoundInitialized
    {
        bytes32 ticketHash = getTicketHash(_ticket);
        // The protocol's order: recipient, sender, auxData (creation round and its block hash,
        // expiry), recipientRand, used, signature, win.
        require(_ticket.recipient != address(0), "ticket recipient is null address");
        require(_ticket.sender != address(0), "ticket sender is null address");
        uint256 creationRound = _validateAuxData(_ticket.auxData);
        require(keccak256(abi.encodePacked(_recipientRand)) == _ticket.recipientRandHash,
                "recipientRand does not match recipientRandHash");
        require(!usedTickets[ticketHash], "ticket is used");
        require(_recover(ticketHash, _sig) == _ticket.sender, "invalid signature over ticket hash");
        require(uint256(keccak256(abi.encodePacked(_sig, _recipientRand))) < _ticket.winProb, "ticket did not win");

        Sender storage sender = senders[_ticket.sender];
        require(!_isUnlockInProgress(sender) || rounds().currentRound() < sender.withdrawRound, "sender is unlocked");
        uint256 claimable = claimableReserve(_ticket.sender, _ticket.recipient);
        require(sender.deposit + claimable >= _ticket.faceValue,
                "sender deposit and reserve insufficient to cover ticket face value");

        usedTickets[ticketHash] = true;
        uint256 amount = _ticket.faceValue;
        if (amount > sender.deposit) {
            uint256 fromReserve = amount - sender.deposit;
            sender.deposit = 0;
            _claimFromReserve(_ticket.sender, _ticket.recipient, fromReserve);
        } else {
            sender.deposit -= amount;
        }
        if (amount > 0) {
            bonding().updateTranscoderWithFees(_ticket.recipient, amount, creationRound);
            emit WinningTicketTransfer(_ticket.sender, _ticket.recipient, amount);
        }
        emit WinningTicketRedeemed(_ticket.sender, _ticket.recipient, _ticket.faceValue, _ticket.winProb,
                                   _ticket.senderNonce, _recipientRand, _ticket.auxData);
    }

    function batchRedeemWinningTickets(Ticket[] memory _tickets, bytes[] memory _sigs, uint256[] memory _recipientRands)
        public
        whenSystemNotPaused
        currentRoundInitialized
    {
        for (uint256 i = 0; i < _tickets.length; i++) {
            // Each on its own: one bad ticket does not stop the others (as the protocol's).
            (bool ok, ) = address(this).call(
                abi.encodeWithSelector(this.redeemWinningTicket.selector, _tickets[i], _sigs[i], _recipientRands[i]));
            ok;
        }
    }

    // Unlock and withdraw

    function unlock() public whenSystemNotPaused {
        Sender storage s = senders[msg.sender];
        require(s.deposit > 0 || reserves[msg.sender].funds > 0, "sender deposit and reserve are zero");
        require(!_isUnlockInProgress(s), "unlock already initiated");
        uint256 currentRound = rounds().currentRound();
        s.withdrawRound = currentRound + unlockPeriod;
        emit Unlock(msg.sender, currentRound, s.withdrawRound);
    }

    function cancelUnlock() public whenSystemNotPaused {
        Sender storage s = senders[msg.sender];
        require(_isUnlockInProgress(s), "no unlock request in progress");
        s.withdrawRound = 0;
        emit UnlockCancelled(msg.sender);
    }

    function withdraw() public whenSystemNotPaused {
        Sender storage s = senders[msg.sender];
        uint256 deposit = s.deposit;
        uint256 reserve = reserves[msg.sender].funds;
        require(deposit > 0 || reserve > 0, "sender deposit and reserve are zero");
        require(_isUnlockInProgress(s), "no unlock request in progress");
        require(s.withdrawRound <= rounds().currentRound(), "account is locked");
        s.deposit = 0;
        s.withdrawRound = 0;
        reserves[msg.sender].funds = 0;
        emit Withdrawal(msg.sender, deposit, reserve);
        (bool sent, ) = payable(msg.sender).call{value: deposit + reserve}("");
        require(sent, "withdrawal transfer failed");
    }

    // Views

    function getTicketHash(Ticket memory _ticket) public pure returns (bytes32) {
        return keccak256(abi.encodePacked(_ticket.recipient, _ticket.sender, _ticket.faceValue, _ticket.winProb,
                                          _ticket.senderNonce, _ticket.recipientRandHash, _ticket.auxData));
    }

    function getSenderInfo(address _sender) public view returns (Sender memory sender, ReserveInfo memory reserve) {
        sender = senders[_sender];
        reserve = getReserveInfo(_sender);
    }

    function getReserveInfo(address _reserveHolder) public view returns (ReserveInfo memory info) {
        Reserve storage r = reserves[_reserveHolder];
        info.fundsRemaining = r.funds;
        info.claimedInCurrentRound = r.claimedForRound[rounds().currentRound()];
    }

    function isUnlockInProgress(address _sender) public view returns (bool) {
        return _isUnlockInProgress(senders[_sender]);
    }

    // What _claimant may still take from _reserveHolder's reserve this round: an equal share
    // for each active transcoder, less what it took already.
    function claimableReserve(address _reserveHolder, address _claimant) public view returns (uint256) {
        Reserve storage r = reserves[_reserveHolder];
        uint256 currentRound = rounds().currentRound();
        if (!bonding().isActiveTranscoder(_claimant)) {
            return 0;
        }
        uint256 poolSize = bonding().getTranscoderPoolSize();
        if (poolSize == 0) {
            return 0;
        }
        uint256 allocation = (r.funds + r.claimedForRound[currentRound]) / poolSize;
        uint256 claimed = r.claimedByAddress[currentRound][_claimant];
        return allocation > claimed ? allocation - claimed : 0;
    }

    function claimedReserve(address _reserveHolder, address _claimant) public view returns (uint256) {
        return reserves[_reserveHolder].claimedByAddress[rounds().currentRound()][_claimant];
    }

    // Internals

    function _claimFromReserve(address _reserveHolder, address _claimant, uint256 _amount) internal {
        uint256 claimable = claimableReserve(_reserveHolder, _claimant);
        uint256 claimed = _amount > claimable ? claimable : _amount;
        if (claimed == 0) {
            return;
        }
        Reserve storage r = reserves[_reserveHolder];
        uint256 currentRound = rounds().currentRound();
        r.funds -= claimed;
        r.claimedForRound[currentRound] += claimed;
        r.claimedByAddress[currentRound][_claimant] += claimed;
        emit ReserveClaimed(_reserveHolder, _claimant, claimed);
    }

    function _validateAuxData(bytes memory _auxData) internal view returns (uint256 creationRound) {
        require(_auxData.length == 64, "invalid length for ticket auxData: must be 64 bytes");
        bytes32 creationRoundBlockHash;
        assembly {
            creationRound := mload(add(_auxData, 32))
            creationRoundBlockHash := mload(add(_auxData, 64))
        }
        bytes32 blockHash = rounds().blockHashForRound(creationRound);
        require(blockHash != bytes32(0), "ticket creationRound does not have a block hash");
        require(creationRoundBlockHash == blockHash, "ticket creationRoundBlockHash invalid for creationRound");
        require(creationRound + ticketValidityPeriod > rounds().currentRound(), "ticket is expired");
    }

    // OpenZeppelin 4.4's ECDSA.recover over the EIP-191 hash of the ticket hash, with its checks
    // and revert strings.
    function _recover(bytes32 _hash, bytes memory _sig) internal pure returns (address) {
        require(_sig.length == 65, "INVALID_SIGNATURE_LENGTH");
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := mload(add(_sig, 32))
            s := mload(add(_sig, 64))
            v := byte(0, mload(add(_sig, 96)))
        }
        require(uint256(s) <= 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0,
                "ECDSA: invalid signature 's' value");
        require(v == 27 || v == 28, "ECDSA: invalid signature 'v' value");
        address signer = ecrecover(keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", _hash)), v, r, s);
        require(signer != address(0), "ECDSA: invalid signature");
        return signer;
    }

    function _isUnlockInProgress(Sender storage _sender) internal view returns (bool) {
        return _sender.withdrawRound > 0;
    }

    function rounds() internal view returns (ITicketRounds) {
        return ITicketRounds(registered("RoundsManager"));
    }

    function bonding() internal view returns (ITicketBonding) {
        return ITicketBonding(registered("BondingManager"));
    }
}

<?php
/* Русские тексты lib/AdminOrderBlock.php. */
$MESS['ORDERBRIDGE_B24_BLOCK_TITLE'] = 'Битрикс24';
$MESS['ORDERBRIDGE_B24_DEAL'] = 'Сделка Битрикс24 №#ID#';

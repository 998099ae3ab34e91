<?php
/* English texts of lib/AdminOrderBlock.php. */
$MESS['ORDERBRIDGE_B24_BLOCK_TITLE'] = 'Bitrix24';
$MESS['ORDERBRIDGE_B24_DEAL'] = 'Bitrix24 deal ##ID#';

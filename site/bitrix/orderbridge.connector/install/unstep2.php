<?php
/*
 * Uninstall, step 2: the outcome of DoUninstall's second step. An error that it put in
 * $APPLICATION->ThrowException is shown; the module then stays registered, to try again.
 */

use Bitrix\Main\Localization\Loc;

if (!check_bitrix_sessid()) {
	return;
}
Loc::loadMessages(__FILE__);

global $APPLICATION;
if ($exception = $APPLICATION->GetException()) {
	CAdminMessage::ShowMessage([
		'TYPE' => 'ERROR',
		'MESSAGE' => Loc::getMessage('ORDERBRIDGE_UNSTEP_ERROR'),
		'DETAILS' => $exception->GetString(),
		'HTML' => false,
	]);
} else {
	CAdminMessage::ShowNote(Loc::getMessage('ORDERBRIDGE_UNSTEP_OK'));
}
?>
<form action="<?= htmlspecialcharsbx($APPLICATION->GetCurPage()) ?>">
	<input type="hidden" name="lang" value="<?= htmlspecialcharsbx(LANGUAGE_ID) ?>">
	<input type="submit" value="<?= htmlspecialcharsbx(Loc::getMessage('ORDERBRIDGE_STEP_BACK')) ?>">
</form>
